"""The `baseline` generator: registration, network shapes, supervised training, checkpoints."""

import os
import subprocess
import sys

import numpy as np
import pytest

if os.environ.get("CI") == "true":
    import torch
else:
    torch = pytest.importorskip("torch")

from ptycho_baseline import plugin  # noqa: E402
from ptycho_baseline.network import BaselineNet, build_baseline  # noqa: E402

from ptycho_core.errors import PtychoError, UsageError  # noqa: E402
from ptycho_core.generator import TrainConfig  # noqa: E402
from ptycho_core.pipeline import prepare  # noqa: E402
from ptycho_core.plugins import PluginHost  # noqa: E402
from ptycho_core.simulate import SimConfig, simulate_pair  # noqa: E402

TINY_SIM = SimConfig(train_objects=1, patch_size=16, object_size=48, step=4)
#: A narrow network keeps CPU tests fast; the architecture is the same.
SMALL = 0.25


@pytest.fixture(scope="module")
def prepared():
    train, test = simulate_pair(TINY_SIM)
    return prepare(train, test, gridsize=1, seed=0, supervised=True)


def fit(prepared, epochs=2, seed=0, lr=3e-3):
    gen = build_baseline(scale=SMALL)
    cfg = TrainConfig(epochs=epochs, batch_size=8, lr=lr, device="cpu", patience=0, seed=seed)
    history = gen.fit(prepared.train, prepared.val, cfg, lambda e: None)
    return gen, history


def test_plugin_registers_a_supervised_torch_generator():
    host = PluginHost(load="")
    with host.registered(plugin, "ptycho-baseline-test"):
        spec = host.registry().generator("baseline")
    assert spec.framework == "torch" and spec.supervised and spec.kind == "learned"
    assert spec.factory == "ptycho_baseline.network:build_baseline"
    assert set(spec.requires) == {"torch", "safetensors"}
    assert spec.resolve_options({"scale": "0.5"}) == {"scale": 0.5}


def test_registration_does_not_import_torch():
    code = (
        "import sys\n"
        "from ptycho_core.plugins import PluginHost\n"
        "from ptycho_baseline import plugin\n"
        "host = PluginHost(load='')\n"
        "with host.registered(plugin, 'b'):\n"
        "    host.registry().generator('baseline')\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("channels", [1, 4])
def test_network_maps_each_pattern_to_a_complex_patch(channels):
    torch.manual_seed(0)
    net = BaselineNet(16)
    x = torch.rand(3, channels, 16, 16)
    out = net(x)
    assert out.shape == (3, channels, 16, 16) and out.dtype == torch.complex64
    assert (out.abs() > 0).all()
    # The phase is pi * tanh of the phase decoder's output: pin that output and read the phase back.
    for head, phase in ((0.5, np.pi * np.tanh(0.5)), (-3.0, np.pi * np.tanh(-3.0))):
        hook = net.phase.register_forward_hook(lambda module, args, output, v=head: torch.full_like(output, v))
        try:
            pinned = net(x)
        finally:
            hook.remove()
        torch.testing.assert_close(pinned.angle(), torch.full(pinned.shape, phase), rtol=0, atol=1e-5)
    # Channels are independent samples: channel k's output depends only on channel k's input.
    single = net(x[:, -1:])
    torch.testing.assert_close(out[:, -1:], single, rtol=1e-5, atol=1e-6)


def test_scale_sets_the_filter_counts():
    small, default = BaselineNet(16, 0.5), BaselineNet(16)
    assert small.encoder[0].out_channels == 16 and default.encoder[0].out_channels == 32
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in default.parameters())


def test_patch_size_not_divisible_by_8_or_bad_scale_is_refused():
    with pytest.raises(UsageError, match="divisible by 8"):
        BaselineNet(20)
    with pytest.raises(UsageError, match="positive"):
        build_baseline(scale=0)


def test_predict_returns_contract_shapes_for_gridsize_2():
    train, test = simulate_pair(TINY_SIM)
    data = prepare(train, test, gridsize=2, seed=0, supervised=True)
    gen = build_baseline(scale=SMALL)
    cfg = TrainConfig(epochs=1, batch_size=16, device="cpu", patience=0)
    gen.fit(data.train.subset(slice(0, 16)), data.val, cfg, lambda e: None)
    out = gen.predict(data.val.diffraction, data.val.offsets)
    assert out.shape == data.val.diffraction.shape == (data.val.n_groups, 4, 16, 16)
    assert out.dtype == np.complex64


def test_a_few_epochs_lower_the_supervised_loss(prepared):
    _, history = fit(prepared, epochs=3, lr=1e-2)
    assert history.stopped == ""
    assert history.loss[-1] < history.loss[0]
    assert history.val_loss[-1] < history.val_loss[0]


def test_same_seed_gives_the_same_weights(prepared):
    a, _ = fit(prepared, epochs=1)
    b, _ = fit(prepared, epochs=1)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_save_then_load_reproduces_predictions_exactly(prepared, tmp_path):
    gen, _ = fit(prepared, epochs=1)
    gen.save(tmp_path)
    loaded = build_baseline(scale=SMALL).load(tmp_path, device="cpu")
    d, o = prepared.val.diffraction, prepared.val.offsets
    np.testing.assert_array_equal(loaded.predict(d, o), gen.predict(d, o))
    with pytest.raises(PtychoError, match="do not match"):
        build_baseline(scale=0.5).load(tmp_path)


def test_fit_without_ground_truth_is_refused(prepared):
    import dataclasses

    train = dataclasses.replace(prepared.train, gt_patches=None)
    with pytest.raises(PtychoError, match="ground-truth"):
        build_baseline(scale=SMALL).fit(train, prepared.val, TrainConfig(epochs=1, device="cpu"), lambda e: None)


def test_baseline_maps_each_pattern_alone():
    from ptycho_baseline.network import build_baseline

    assert build_baseline().per_pattern is True
