"""ptycho-mynet against ptycho's contracts: the conformance kit does the work.

Started from the scaffold's test (`ptycho new-plugin mynet`), extended with the loader and the
stitcher this example adds. Run after installing the plugin: `pip install . && pytest tests`.
"""

import torch
from ptycho_mynet.io import save_mynet
from ptycho_mynet.network import MynetNet

from ptycho_core.testing import GeneratorConformance, LoaderConformance, StitcherConformance


class TestMynetConformance(GeneratorConformance):
    generator = "mynet"
    options = {"width": 8}


class TestMynetH5Conformance(LoaderConformance):
    loader = "mynet_h5"
    write = staticmethod(save_mynet)


class TestGaussianStitcherConformance(StitcherConformance):
    stitcher = "gaussian"


def test_network_returns_complex_patches_of_input_shape():
    x = torch.rand(3, 4, 16, 16)
    out = MynetNet(channels=4, width=8)(x)
    assert out.shape == (3, 4, 16, 16)
    assert out.dtype == torch.complex64
