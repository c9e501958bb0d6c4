"""The torch physics loss against known answers: the Poisson NLL and MAE on hand-made values, the
whole physics loss (input_scale, mask, forward model) against a numpy formula, and the trainer's
wiring at gridsize 2 (offsets and canvas size reach the overlap constraint) against
`ptycho_core.physics.overlap_average`."""

from __future__ import annotations

import os

import numpy as np
import pytest

if os.environ.get("CI") != "true":
    pytest.importorskip("torch")
import torch  # noqa: E402

from ptycho_core import physics  # noqa: E402
from ptycho_core.generator import TrainConfig  # noqa: E402
from ptycho_core.testing.conformance import tiny_data  # noqa: E402
from ptycho_core.torch import losses  # noqa: E402
from ptycho_core.torch.trainer import ScaledNetwork, TorchGenerator, _TorchBackend  # noqa: E402

EPS = losses.POISSON_EPS


def _poisson(intensity, measured, mask=None):
    values = intensity - measured**2 * np.log(intensity + EPS)
    return float(values[np.broadcast_to(mask, values.shape)].mean() if mask is not None else values.mean())


def test_poisson_nll_and_mae_match_their_formulas_on_hand_made_values():
    p2 = torch.tensor([[[[1.0, 4.0], [0.25, 9.0]]]])
    m = torch.tensor([[[[1.0, 2.0], [0.5, 1.0]]]])
    mask = torch.tensor([[True, True], [True, False]])
    # mean of p^2 - m^2 log(p^2 + eps) over the three valid pixels
    want = np.mean([1 - np.log(1 + EPS), 4 - 4 * np.log(4 + EPS), 0.25 - 0.25 * np.log(0.25 + EPS)])
    assert float(losses.amplitude_loss(p2, m, mask, "poisson")) == pytest.approx(want, rel=1e-5)
    assert float(losses.amplitude_loss(p2, m, None, "poisson")) == pytest.approx(
        _poisson(p2.numpy(), m.numpy()), rel=1e-5
    )
    assert float(losses.amplitude_loss(p2, m, mask, "mae")) == pytest.approx((0 + 0 + 0) / 3, abs=1e-6)
    assert float(losses.amplitude_loss(p2, m, None, "mae")) == pytest.approx(2 / 4, rel=1e-6)


def test_poisson_nll_is_smallest_where_the_prediction_matches_the_measurement():
    m = torch.full((1, 1, 1, 1), 1.5)
    grid = torch.linspace(0.5, 4.0, 351).reshape(-1, 1, 1, 1)
    values = [float(losses.amplitude_loss(p2.reshape(1, 1, 1, 1), m, None, "poisson")) for p2 in grid]
    assert float(grid[int(np.argmin(values))]) == pytest.approx(1.5**2, abs=0.01)


def _case(channels, seed=0, n=8):
    rng = np.random.default_rng(seed)
    shape = (3, channels, n, n)
    patches = (rng.uniform(0.5, 1.5, shape) * np.exp(1j * rng.uniform(-1, 1, shape))).astype(np.complex64)
    probe = (rng.uniform(0.5, 1.0, (n, n)) * np.exp(1j * rng.uniform(-1, 1, (n, n)))).astype(np.complex64)
    diffraction = rng.uniform(0.1, 2.0, shape).astype(np.float32)
    offsets = rng.uniform(-2.5, 2.5, (3, channels, 2))
    mask = rng.uniform(size=(n, n)) > 0.3
    return patches, probe, diffraction, offsets, mask


def test_physics_loss_matches_the_numpy_formula_with_input_scale_and_mask():
    patches, probe, diffraction, _, mask = _case(1)
    scale = 0.37
    got = losses.physics_loss(
        torch.from_numpy(patches), torch.from_numpy(diffraction), torch.from_numpy(probe), scale,
        mask=torch.from_numpy(mask),
    )  # fmt: skip
    intensity = (physics.forward(probe, patches).astype(np.float64) * scale) ** 2
    want = _poisson(intensity, diffraction.astype(np.float64) * scale, mask)
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_physics_loss_applies_the_overlap_constraint_like_the_numpy_reference():
    patches, probe, diffraction, offsets, _ = _case(4)
    m = physics.canvas_size(offsets, patches.shape[-1])
    got = losses.physics_loss(
        torch.from_numpy(patches), torch.from_numpy(diffraction), torch.from_numpy(probe), 1.0,
        offsets=torch.from_numpy(offsets), canvas_size=m,
    )  # fmt: skip
    merged = physics.overlap_average(patches, offsets, m)
    want = _poisson(physics.forward(probe, merged).astype(np.float64) ** 2, diffraction.astype(np.float64))
    assert float(got) == pytest.approx(want, rel=1e-5)
    unmerged = _poisson(physics.forward(probe, patches).astype(np.float64) ** 2, diffraction.astype(np.float64))
    assert abs(unmerged - want) > 1e-3 * abs(want)  # the constraint changes this case


class _KnownPatches(torch.nn.Module):
    """Patches that are a fixed function of the input: x + 0.5j x (no parameters)."""

    def forward(self, x):
        return torch.complex(x, 0.5 * x)


def test_trainer_passes_offsets_and_canvas_to_the_loss_at_gridsize_2():
    prepared = tiny_data(gridsize=2)
    data = prepared.train
    gen = TorchGenerator(lambda c, n: _KnownPatches(), name="known")
    gen.model = ScaledNetwork(_KnownPatches(), data.s0)
    config = TrainConfig(epochs=1, batch_size=1000, device="cpu", seed=0)
    backend = _TorchBackend(gen, data, data, config, torch.device("cpu"))
    x = data.diffraction.astype(np.float64) * data.input_scale
    patches = ((x + 0.5j * x) * data.s0).astype(np.complex64)
    merged = physics.overlap_average(patches, data.offsets, data.canvas_size)
    intensity = (physics.forward(data.probe, merged).astype(np.float64) * data.input_scale) ** 2
    want = _poisson(intensity, data.diffraction.astype(np.float64) * data.input_scale, data.mask)
    assert data.canvas_size == physics.canvas_size(data.offsets, data.patch_size)
    assert backend.evaluate() == pytest.approx(want, rel=1e-4)
