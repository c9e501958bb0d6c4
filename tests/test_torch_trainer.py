"""The torch engine: TorchGenerator training, stop rules, precision, checkpoints, weights I/O.

Tiny networks defined here, tiny simulated data (N = 16, 48 x 48 object, 64 patterns), 1-3 epochs.
"""

import dataclasses
import json
import os

import numpy as np
import pytest

if os.environ.get("CI") == "true":
    import torch
else:
    torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from ptycho_core import pipeline  # noqa: E402
from ptycho_core.errors import PtychoError, UsageError  # noqa: E402
from ptycho_core.generator import TrainConfig  # noqa: E402
from ptycho_core.pipeline import prepare  # noqa: E402
from ptycho_core.simulate import SimConfig, simulate_pair  # noqa: E402
from ptycho_core.torch import losses  # noqa: E402
from ptycho_core.torch.trainer import GENERATOR_FILE, TorchGenerator  # noqa: E402
from ptycho_core.torch.weights import WEIGHTS_FILE, load_weights, save_weights  # noqa: E402

TINY_SIM = SimConfig(train_objects=1, patch_size=16, object_size=48, step=4)


class TinyNet(nn.Module):
    """Two 3x3 convs per channel group: amplitude softplus, phase unbounded (units of s0)."""

    def __init__(self, channels: int, patch_size: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2 * channels, 3, padding=1)
        )

    def forward(self, x):
        amplitude, phase = self.body(x).float().chunk(2, dim=1)
        return torch.polar(nn.functional.softplus(amplitude), phase)


class ConstantPatch(nn.Module):
    """Ignores its input: one learned complex patch for every pattern."""

    def __init__(self, channels: int, patch_size: int):
        super().__init__()
        self.amplitude = nn.Parameter(torch.zeros(channels, patch_size, patch_size))
        self.phase = nn.Parameter(torch.zeros(channels, patch_size, patch_size))

    def forward(self, x):
        patch = torch.polar(nn.functional.softplus(self.amplitude) + 0.5, self.phase)
        return patch.expand(x.shape[0], -1, -1, -1)


class NaNAfter(TinyNet):
    """TinyNet whose training-mode output becomes NaN from training step `after` + 1 on."""

    def __init__(self, channels, patch_size, after):
        super().__init__(channels, patch_size)
        self.after = after
        self.calls = 0

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            self.calls += 1
            if self.calls > self.after:
                return out * float("nan")
        return out


@pytest.fixture(scope="module")
def datasets():
    return simulate_pair(TINY_SIM)


@pytest.fixture(scope="module")
def prepared(datasets):
    return prepare(*datasets, gridsize=1, seed=0, supervised=True)


@pytest.fixture(scope="module")
def prepared_g2(datasets):
    return prepare(*datasets, gridsize=2, seed=0, supervised=False)


def config(**changes):
    """A small TrainConfig; `precision` and `compile` go to the torch engine's settings."""
    base = dict(epochs=3, batch_size=8, lr=3e-3, device="cpu", patience=0, seed=0)
    engine = {k: changes.pop(k) for k in ("precision", "compile") if k in changes}
    return TrainConfig(**{**base, **changes}, engine=engine)


def fit(net=TinyNet, data=None, supervised=False, progress=None, **cfg):
    gen = TorchGenerator(net, name="tiny", supervised=supervised)
    history = gen.fit(data.train, data.val, config(**cfg), progress or (lambda e: None))
    return gen, history


def state(gen):
    return {k: v.clone() for k, v in gen.model.state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- training -------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["poisson", "mae"])
def test_pinn_training_lowers_the_physics_loss(prepared, loss):
    _, history = fit(data=prepared, loss=loss)
    assert history.stopped == ""
    assert len(history.loss) == 3 and len(history.val_loss) == 3 and len(history.lr) == 3 and len(history.seconds) == 3
    assert history.loss[-1] < history.loss[0]
    assert history.val_loss[-1] < history.val_loss[0]


def test_pinn_training_with_overlap_constraint_lowers_the_loss(prepared_g2):
    assert prepared_g2.train.channels == 4 and prepared_g2.train.canvas_size > 16
    gen, history = fit(data=prepared_g2, epochs=2, batch_size=4)
    assert history.val_loss[-1] < history.val_loss[0]
    out = gen.predict(prepared_g2.val.diffraction, prepared_g2.val.offsets)
    assert out.shape == prepared_g2.val.diffraction.shape and out.dtype == np.complex64


def test_supervised_training_lowers_the_ground_truth_loss(prepared):
    _, history = fit(data=prepared, supervised=True, lr=1e-2)
    assert history.loss[-1] < history.loss[0]
    assert history.val_loss[-1] < history.val_loss[0]


def test_supervised_fit_without_ground_truth_is_refused(prepared):
    train = dataclasses.replace(prepared.train, gt_patches=None)
    gen = TorchGenerator(TinyNet, name="tiny", supervised=True)
    with pytest.raises(PtychoError, match="ground-truth"):
        gen.fit(train, prepared.val, config(), lambda e: None)


def test_global_scale_starts_at_s0(prepared):
    gen = TorchGenerator(TinyNet, name="tiny")
    gen.fit(prepared.train, prepared.val, config(epochs=1, lr=1e-12), lambda e: None)
    assert float(torch.exp(gen.model.log_scale.detach())) == pytest.approx(prepared.train.s0, rel=1e-5)


def test_same_seed_gives_identical_weights_on_cpu(prepared):
    a, _ = fit(data=prepared, epochs=2)
    b, _ = fit(data=prepared, epochs=2)
    c, _ = fit(data=prepared, epochs=2, seed=1)
    assert same_state(state(a), state(b))
    assert not same_state(state(a), state(c))


def test_progress_reports_steps_and_epoch_ends(prepared):
    events = []
    fit(data=prepared, epochs=2, progress=events.append)
    assert all({"epoch", "epochs", "step", "steps", "loss", "val_loss"} <= set(e) for e in events)
    ends = [e for e in events if e["val_loss"] is not None]
    assert [e["epoch"] for e in ends] == [1, 2]
    assert all(e["step"] == e["steps"] and e["epochs"] == 2 for e in ends)
    assert len(events) > len(ends)


# --- stop rules -------------------------------------------------------------------------------


def test_non_finite_loss_stops_training_and_keeps_the_best_weights(prepared):
    steps = -(-prepared.train.n_groups // 8)
    gen = TorchGenerator(lambda c, n: NaNAfter(c, n, after=steps + 1), name="tiny")
    snapshots = {}

    def progress(event):
        if event["val_loss"] is not None:
            snapshots[event["epoch"]] = state(gen)

    history = gen.fit(prepared.train, prepared.val, config(epochs=5), progress)
    assert history.stopped == "non-finite loss at epoch 2"
    assert len(history.loss) == 1
    assert same_state(state(gen), snapshots[1])
    assert np.isfinite(gen.predict(prepared.val.diffraction, prepared.val.offsets)).all()


def test_non_finite_loss_in_the_first_epoch_keeps_the_initial_weights(prepared):
    gen = TorchGenerator(lambda c, n: NaNAfter(c, n, after=0), name="tiny")
    history = gen.fit(prepared.train, prepared.val, config(), lambda e: None)
    assert history.stopped == "non-finite loss at epoch 1"
    assert history.loss == []
    assert np.isfinite(gen.predict(prepared.val.diffraction, prepared.val.offsets)).all()


def test_huge_learning_rate_never_leaves_non_finite_weights(prepared):
    gen, history = fit(data=prepared, lr=1e12, clip_norm=0, epochs=3)
    assert all(np.isfinite(v).all() for v in (p.detach().numpy() for p in gen.model.parameters()))
    assert np.isfinite(gen.predict(prepared.val.diffraction, prepared.val.offsets)).all()


def test_early_stop_after_patience_epochs_without_improvement(prepared):
    _, history = fit(data=prepared, epochs=10, patience=2, lr=1e-12)
    assert history.stopped.startswith("early stop at epoch 3")
    assert len(history.loss) == 3


def test_timeout_stops_training_gracefully(prepared):
    gen, history = fit(data=prepared, epochs=50, timeout=1e-3)
    assert history.stopped.startswith("timeout after")
    assert len(history.loss) == 1
    assert np.isfinite(gen.predict(prepared.val.diffraction, prepared.val.offsets)).all()


# --- masks and precision ----------------------------------------------------------------------


def test_physics_loss_ignores_masked_pixels():
    rng = np.random.default_rng(0)
    n = 8
    patches = torch.polar(torch.rand(2, 1, n, n) + 0.5, torch.rand(2, 1, n, n)).requires_grad_(True)
    probe = torch.ones(n, n, dtype=torch.complex64)
    measured = torch.from_numpy(rng.uniform(0, 2, (2, 1, n, n)).astype(np.float32))
    mask = torch.ones(n, n, dtype=torch.bool)
    mask[:3] = False
    corrupted = measured.clone()
    corrupted[..., :3, :] = 1e6
    for kind in ("poisson", "mae"):
        a = losses.physics_loss(patches, measured, probe, 0.7, mask=mask, kind=kind)
        b = losses.physics_loss(patches, corrupted, probe, 0.7, mask=mask, kind=kind)
        assert float(a.detach()) == pytest.approx(float(b.detach()), rel=1e-6)


@pytest.mark.parametrize("per_pattern", [False, True], ids=["shared_mask", "per_pattern_mask"])
def test_training_ignores_masked_detector_pixels(prepared, per_pattern):
    n = prepared.train.patch_size
    mask = np.ones((n, n), dtype=bool)
    mask[: n // 4] = False

    def with_mask(ts, garbage):
        d = ts.diffraction.copy()
        if garbage:
            d[..., ~mask] = 1e4
        m = np.broadcast_to(mask, d.shape).copy() if per_pattern else mask
        return dataclasses.replace(ts, diffraction=d, mask=m)

    weights = []
    for garbage in (False, True):
        gen = TorchGenerator(ConstantPatch, name="tiny")
        gen.fit(with_mask(prepared.train, garbage), with_mask(prepared.val, garbage), config(epochs=2), lambda e: None)
        weights.append(state(gen))
    assert same_state(*weights)


def test_bf16_precision_trains_and_predicts_complex64(prepared):
    gen, history = fit(data=prepared, precision="bf16", epochs=2)
    assert history.stopped == "" and all(np.isfinite(history.loss))
    out = gen.predict(prepared.val.diffraction, prepared.val.offsets)
    assert out.dtype == np.complex64 and np.isfinite(out).all()


def test_cuda_request_without_a_gpu_is_a_usage_error(prepared):
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is available here")
    with pytest.raises(UsageError, match="cuda"):
        fit(data=prepared, device="cuda")


# --- prediction and checkpoints ---------------------------------------------------------------


def test_predict_applies_input_scale_and_returns_contract_units(prepared):
    gen, _ = fit(data=prepared, epochs=1)
    d = prepared.val.diffraction
    x = torch.from_numpy(d) * prepared.train.input_scale
    with torch.no_grad():
        expected = (gen.network(x) * torch.exp(gen.model.log_scale)).numpy()
    np.testing.assert_allclose(gen.predict(d, prepared.val.offsets), expected, rtol=1e-5, atol=1e-6)


def test_predict_gives_the_same_patches_whatever_batches_the_caller_makes(prepared):
    gen, _ = fit(data=prepared, epochs=1)
    d, o = prepared.train.diffraction, prepared.train.offsets
    whole = gen.predict(d, o)
    assert whole.shape == d.shape and whole.dtype == np.complex64
    halves = np.concatenate([gen.predict(d[:5], o[:5]), gen.predict(d[5:], o[5:])])
    np.testing.assert_allclose(halves, whole, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(pipeline.predict_groups(gen, d, o, batch_size=3), whole, rtol=1e-6, atol=1e-7)


def test_predict_refuses_the_wrong_shape(prepared):
    gen, _ = fit(data=prepared, epochs=1)
    with pytest.raises(PtychoError, match="expected diffraction"):
        gen.predict(prepared.val.diffraction[:, :, :8, :8], prepared.val.offsets)


def test_save_then_load_reproduces_predictions_exactly(prepared, tmp_path):
    gen, _ = fit(data=prepared, epochs=1)
    extra = gen.save(tmp_path)
    assert (tmp_path / WEIGHTS_FILE).is_file()
    written = json.loads((tmp_path / GENERATOR_FILE).read_text())
    assert written == extra
    assert {"channels": 1, "patch_size": 16, "supervised": False}.items() <= written.items()
    assert written["input_scale"] == prepared.train.input_scale and written["s0"] == prepared.train.s0
    loaded = TorchGenerator(TinyNet, name="tiny").load(tmp_path, device="cpu")
    d = prepared.val.diffraction
    np.testing.assert_array_equal(loaded.predict(d, prepared.val.offsets), gen.predict(d, prepared.val.offsets))
    assert loaded.parameter_count() == gen.parameter_count() == sum(p.numel() for p in gen.network.parameters()) + 1


def test_load_refuses_another_generator_or_mismatched_weights(prepared, tmp_path):
    gen, _ = fit(data=prepared, epochs=1)
    gen.save(tmp_path)
    with pytest.raises(PtychoError, match="not 'other'"):
        TorchGenerator(TinyNet, name="other").load(tmp_path)
    with pytest.raises(PtychoError, match="supervised"):
        TorchGenerator(TinyNet, name="tiny", supervised=True).load(tmp_path)
    with pytest.raises(PtychoError, match="do not match"):
        TorchGenerator(ConstantPatch, name="tiny").load(tmp_path)
    with pytest.raises(PtychoError, match="no generator.json"):
        TorchGenerator(TinyNet, name="tiny").load(tmp_path / "missing")


def test_using_a_generator_before_fit_or_load_is_a_clear_error():
    gen = TorchGenerator(TinyNet, name="tiny")
    with pytest.raises(PtychoError, match="fit\\(\\) or load\\(\\)"):
        gen.predict(np.zeros((1, 1, 16, 16), np.float32), np.zeros((1, 1, 2)))


def test_weights_round_trip_through_safetensors_only(tmp_path):
    torch.manual_seed(0)
    a, b = TinyNet(1, 16), TinyNet(1, 16)
    path = save_weights(a, tmp_path / "w.safetensors")
    assert path.read_bytes()[:8] != b"PK\x03\x04"  # not a torch.save zip archive
    load_weights(b, path)
    assert same_state(a.state_dict(), b.state_dict())
    with pytest.raises(PtychoError, match="do not match"):
        load_weights(TinyNet(4, 16), path)
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(PtychoError, match="safetensors"):
        load_weights(b, tmp_path / "bad.safetensors")


def test_the_overlap_canvas_holds_every_patch_of_every_group(prepared_g2):
    """The canvas the trainer's overlap constraint uses loses no splat weight off its edges (a
    canvas of one patch's size would)."""
    import torch

    from ptycho_core.torch import physics as torch_physics

    offsets, m = prepared_g2.train.offsets, prepared_g2.train.canvas_size
    ones = torch.ones((len(offsets), offsets.shape[1], 16, 16))

    def mass(size):
        local = torch.from_numpy(offsets).double() + size // 2
        return torch_physics.splat_batch(ones, local, (size, size)).sum(dim=(-2, -1)).numpy()

    np.testing.assert_allclose(mass(m), offsets.shape[1] * 16 * 16, rtol=1e-5)
    assert (mass(16) < offsets.shape[1] * 16 * 16 * (1 - 1e-3)).any()


def test_auto_precision_is_bf16_only_where_the_device_computes_it_natively(monkeypatch):
    import torch

    from ptycho_core.torch.trainer import resolve_precision

    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert resolve_precision("auto", cpu) == "fp32"


def test_the_precision_used_is_recorded_in_the_checkpoint(prepared, tmp_path):
    gen, _ = fit(data=prepared, epochs=1)
    extra = gen.save(tmp_path)
    assert extra["precision"] == "fp32"


def test_predict_in_cache_sized_passes_gives_what_one_pass_gives(prepared, monkeypatch):
    from ptycho_core.torch import trainer

    gen, _ = fit(data=prepared, epochs=1)
    x = prepared.val.diffraction
    whole = gen.predict(x, prepared.val.offsets)
    monkeypatch.setattr(trainer, "CPU_INFERENCE_PIXELS", 1)  # one group per pass
    np.testing.assert_allclose(gen.predict(x, prepared.val.offsets), whole, rtol=1e-5, atol=1e-6)
    assert gen.predict(x[:0], prepared.val.offsets[:0]).shape == (0,) + x.shape[1:]


def test_compiled_training_follows_eager_training(prepared):
    """compile="on" (torch.compile, inductor CPU) trains the same network to the same losses and
    weights as eager mode, within float rounding; the one torch.compile test (compiling is slow)."""
    eager, eager_history = fit(data=prepared, epochs=1)
    compiled, compiled_history = fit(data=prepared, epochs=1, compile="on")
    np.testing.assert_allclose(compiled_history.loss, eager_history.loss, rtol=1e-4)
    np.testing.assert_allclose(compiled_history.val_loss, eager_history.val_loss, rtol=1e-4)
    x = prepared.val.diffraction
    np.testing.assert_allclose(compiled.predict(x), eager.predict(x), rtol=1e-3, atol=1e-4)
