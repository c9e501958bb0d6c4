"""`pinn_tf` honours the generator contract (the ptycho_core.testing conformance kit): complete spec,
registration without TensorFlow, Keras or numpy, predict shapes and dtype for C=1 and C=4 (the
overlap constraint on), save/load reproduces the predictions, a short physics-loss fit lowers the
loss, the same seed gives the same result."""

import os

import pytest

if os.environ.get("CI") != "true":
    # through the plugin's env module: KERAS_BACKEND and the log level are set before TensorFlow loads
    pytest.importorskip("ptycho_pinn_tf.env")

from ptycho_core.testing import GeneratorConformance  # noqa: E402


class TestPinnTfConformance(GeneratorConformance):
    generator = "ptycho-pinn-tf:pinn_tf"
    options = {"filter_scale": 1}
