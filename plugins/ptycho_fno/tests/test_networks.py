"""The networks themselves: shapes and dtypes, mode and level clamping, the DFT spectral convolution
against neuraloperator's FFT path, bf16 under autocast, near-identity stable blocks at initialisation."""

import os

import numpy as np
import pytest

if os.environ.get("CI") == "true":
    import torch
else:
    torch = pytest.importorskip("torch")
    pytest.importorskip("neuralop")

from ptycho_fno.blocks import PtychoBlock, SpectralConv2d, StablePtychoBlock, clamp_modes  # noqa: E402
from ptycho_fno.fno import FNO  # noqa: E402
from ptycho_fno.hybrid import UNO, stable_block, usable_levels  # noqa: E402

NETWORKS = {
    "fno": lambda c, n: FNO(c, n, width=8, blocks=2, modes=4, cnn_blocks=1),
    "hybrid": lambda c, n: UNO(c, n, width=8, levels=2, modes=4, max_hidden_channels=16),
    "stable_hybrid": lambda c, n: UNO(c, n, width=8, levels=2, modes=4, max_hidden_channels=16, block=stable_block()),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("channels", [1, 4])
def test_network_maps_amplitudes_to_complex_patches(name, channels):
    torch.manual_seed(0)
    net = NETWORKS[name](channels, 16)
    out = net(torch.rand(3, channels, 16, 16))
    assert out.shape == (3, channels, 16, 16)
    assert out.dtype == torch.complex64
    assert torch.isfinite(torch.view_as_real(out)).all()


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_untrained_network_predicts_a_unit_amplitude_object(name):
    torch.manual_seed(0)
    with torch.no_grad():
        out = NETWORKS[name](1, 16)(torch.rand(2, 1, 16, 16))
    assert 0.5 < float(out.abs().mean()) < 1.5


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_network_runs_its_spectral_convolutions_in_bf16_under_autocast(name):
    torch.manual_seed(0)
    net = NETWORKS[name](1, 16)
    x = torch.rand(2, 1, 16, 16)
    seen = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
        for m in net.modules()
        if isinstance(m, SpectralConv2d)
    ]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
    for hook in hooks:
        hook.remove()
    with torch.no_grad():
        exact = net(x)
    assert out.dtype == torch.complex64
    assert seen and all(dtype == torch.bfloat16 for dtype in seen)
    assert float((out - exact).abs().max()) < 0.05 * float(exact.abs().max())


@pytest.mark.parametrize(("size", "modes"), [(16, 12), (8, 8), (9, 8), (12, 4)])
def test_dft_spectral_convolution_computes_neuraloperators_function(size, modes):
    torch.manual_seed(0)
    conv = SpectralConv2d(6, 5, clamp_modes(modes, size))
    x = torch.randn(3, 6, size, size + 2, requires_grad=True)
    fast = conv(x)
    conv.dft = False
    exact = conv(x)
    torch.testing.assert_close(fast, exact, rtol=1e-5, atol=1e-5)
    (grad_fast,) = torch.autograd.grad(fast.square().sum(), x)
    (grad_exact,) = torch.autograd.grad(exact.square().sum(), x)
    torch.testing.assert_close(grad_fast, grad_exact, rtol=1e-4, atol=1e-4)


def test_modes_are_clamped_to_the_map_size():
    assert clamp_modes(12, 64) == 12
    assert clamp_modes(12, 16) == 12
    assert clamp_modes(12, 8) == 8
    assert clamp_modes(12, 2) == 2
    assert clamp_modes(5, 64) == 4
    # a 12-mode FNO on 16x16 and a U-NO whose deeper maps are smaller than the modes still run
    assert FNO(1, 16, width=4, blocks=1, modes=12)(torch.rand(1, 1, 16, 16)).shape == (1, 1, 16, 16)
    assert UNO(1, 16, width=4, levels=3, modes=12)(torch.rand(1, 1, 16, 16)).shape == (1, 1, 16, 16)


def test_levels_are_reduced_when_the_patch_cannot_be_halved_that_often():
    assert usable_levels(64, 3) == 3
    assert usable_levels(16, 3) == 3  # 16 -> 8 -> 4 -> 2
    assert usable_levels(16, 5) == 3
    assert usable_levels(24, 4) == 3  # 24 -> 12 -> 6 -> 3
    assert usable_levels(18, 3) == 1
    net = UNO(1, 24, width=4, levels=4, modes=4)
    assert net.levels == 3
    assert net(torch.rand(1, 1, 24, 24)).shape == (1, 1, 24, 24)


def test_channels_double_per_level_up_to_the_cap():
    net = UNO(1, 64, width=8, levels=3, modes=4, max_hidden_channels=16)
    assert [d.out_channels for d in net.down] == [16, 16, 16]


def test_stable_block_is_near_identity_at_initialisation():
    torch.manual_seed(0)
    block = StablePtychoBlock(8, 4, layerscale_init=1e-3)
    plain = PtychoBlock(8, 4)
    x = torch.randn(2, 8, 16, 16)
    with torch.no_grad():
        assert float((block(x) - x).abs().max() / x.abs().max()) < 5e-3
        assert float((plain(x) - x).abs().max() / x.abs().max()) > 0.05


def test_stable_block_layerscale_receives_gradient():
    torch.manual_seed(0)
    block = StablePtychoBlock(8, 4)
    block(torch.randn(2, 8, 16, 16)).square().mean().backward()
    assert float(block.gamma.grad.abs().sum()) > 0
    assert float(block.local.weight.grad.abs().sum()) > 0


TINY_OPTIONS = {
    "fno": {"width": 8, "blocks": 2, "modes": 4, "cnn_blocks": 1},
    "hybrid": {"width": 8, "levels": 2, "modes": 4, "max_hidden_channels": 16},
    "stable_hybrid": {"width": 8, "levels": 2, "modes": 4, "max_hidden_channels": 16},
}


def _factory(name):
    from ptycho_fno import models

    return getattr(models, f"build_{name}")


@pytest.mark.parametrize("name", sorted(TINY_OPTIONS))
def test_each_patch_of_a_group_depends_only_on_its_own_pattern(name):
    """With the overlap constraint the loss only sees the average of a group's patches; a shared
    per-pattern network cannot hand the whole object to one channel and flatten the anchor."""
    torch.manual_seed(0)
    net = _factory(name)(**TINY_OPTIONS[name]).build(4, 16)
    x = torch.rand(2, 4, 16, 16)
    changed = x.clone()
    changed[:, 2] = torch.rand(2, 16, 16)
    with torch.no_grad():
        a, b = net(x), net(changed)
    assert torch.equal(a[:, [0, 1, 3]], b[:, [0, 1, 3]])
    assert not torch.equal(a[:, 2], b[:, 2])
    # a permutation of the group's patterns permutes the patches
    order = [3, 0, 2, 1]
    with torch.no_grad():
        assert torch.allclose(net(x[:, order]), a[:, order], atol=1e-6)


@pytest.mark.parametrize("name", sorted(TINY_OPTIONS))
def test_joint_channels_mixes_the_patterns_of_a_group(name):
    torch.manual_seed(0)
    net = _factory(name)(**TINY_OPTIONS[name], joint_channels=True).build(4, 16)
    x = torch.rand(2, 4, 16, 16)
    changed = x.clone()
    changed[:, 2] = torch.rand(2, 16, 16)
    with torch.no_grad():
        assert not torch.equal(net(x)[:, 0], net(changed)[:, 0])


def test_stable_hybrid_trains_under_bf16_with_the_overlap_constraint():
    from ptycho_core.generator import TrainConfig
    from ptycho_core.testing.conformance import tiny_data

    prepared = tiny_data(2)
    gen = _factory("stable_hybrid")(**TINY_OPTIONS["stable_hybrid"])
    config = TrainConfig(epochs=3, batch_size=4, engine={"precision": "bf16"}, device="cpu", patience=0, seed=0)
    history = gen.fit(prepared.train, prepared.val, config, lambda event: None)
    # each epoch draws a quarter of the groups, so the training loss moves with the draw: the
    # validation loss (always the same groups) is the one that must fall
    assert not history.stopped and history.val_loss[-1] < history.val_loss[0]
    out = gen.predict(prepared.test.diffraction[prepared.test_groups.indices[:3]], prepared.test_groups.offsets[:3])
    assert out.shape == (3, 4, 16, 16) and out.dtype.name == "complex64"


def test_bf16_training_reaches_the_fp32_loss_and_infers_close_to_fp32(monkeypatch):
    """bf16 end to end (spectral path included) on a tiny fit: the validation loss stays within a
    few percent of fp32's, and bf16 inference (used where the CPU computes bf16 natively) gives
    patches close to fp32 inference of the same weights."""
    from ptycho_core.generator import TrainConfig
    from ptycho_core.testing.conformance import tiny_data

    prepared = tiny_data(1)
    losses = {}
    for precision in ("fp32", "bf16"):
        gen = _factory("fno")(**TINY_OPTIONS["fno"])
        config = TrainConfig(epochs=2, batch_size=4, engine={"precision": precision}, device="cpu", patience=0, seed=0)
        losses[precision] = gen.fit(prepared.train, prepared.val, config, lambda event: None).val_loss[-1]
    assert abs(losses["bf16"] - losses["fp32"]) < 0.05 * abs(losses["fp32"])
    x = prepared.val.diffraction
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert gen.inference_precision == "bf16"
    fast = gen.predict(x)
    gen.meta["precision"] = "fp32"
    exact = gen.predict(x)
    assert fast.dtype == exact.dtype == np.complex64
    assert np.abs(fast - exact).max() < 0.05 * np.abs(exact).max()
