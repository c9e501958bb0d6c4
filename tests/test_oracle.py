"""Oracle: the true object cut into patches, stitched by every built-in stitcher, scores perfectly.

This pins the whole evaluation path (simulation, extract, stitching, region, alignment, SSIM) on
a case whose answer is known. At integer positions the round trip is exact. At sub-pixel
positions bilinear extraction followed by its adjoint smooths by up to one pixel: a smooth
object still scores > 0.99, while the sharp `lines` object loses a little (> 0.98).
"""

import numpy as np
import pytest

from ptycho_core import metrics, stitch
from ptycho_core.simulate import SimConfig, simulate_pair

STITCHERS = ["probe_weighted", "mean", "gauge"]


def _oracle_scores(cfg: SimConfig, stitcher: str, registry):
    _, test = simulate_pair(cfg)
    shape, shift = stitch.canvas_for(test.positions, test.patch_size, test.object.shape)
    assert shift == (0.0, 0.0)
    obj, weights = stitch.stitch(stitcher, test.gt_patches(), test.positions, shape, test.probe, registry=registry)
    return metrics.score(obj, weights, test.object, test.positions, test.probe, test.diffraction)


@pytest.mark.parametrize("stitcher", STITCHERS)
def test_true_patches_at_integer_positions_score_perfectly(stitcher, core_host):
    cfg = SimConfig(train_objects=1, patch_size=16, object_size=64, step=3.0, jitter=0.0)
    s = _oracle_scores(cfg, stitcher, core_host.registry())
    assert s["amp_ssim"] > 0.999 and s["phase_ssim"] > 0.999
    assert s["amp_mae"] < 1e-5 and s["phase_mae"] < 1e-5
    assert s["frc_amp_px"] == pytest.approx(2.0)


@pytest.mark.parametrize("stitcher", STITCHERS)
def test_true_patches_of_a_smooth_object_at_subpixel_positions_score_above_099(stitcher, core_host):
    cfg = SimConfig(object="grf", train_objects=1, patch_size=16, object_size=64, step=3.0, jitter=0.5)
    s = _oracle_scores(cfg, stitcher, core_host.registry())
    assert s["amp_ssim"] > 0.99 and s["phase_ssim"] > 0.99


@pytest.mark.parametrize("stitcher", STITCHERS)
def test_true_patches_of_the_default_lines_object_at_subpixel_positions_score_above_098(stitcher, core_host):
    cfg = SimConfig(train_objects=1, patch_size=16, object_size=64, step=3.0)  # DEFAULT_SIM's object, jitter 0.5
    s = _oracle_scores(cfg, stitcher, core_host.registry())
    assert s["amp_ssim"] > 0.99 and s["phase_ssim"] > 0.98
    # The data-space error of the oracle is the Poisson noise level, a few percent at 1e5 photons.
    # The `mean` stitcher covers only central crops, so the aberrated probe's halo also meets
    # uncovered object pixels at the scan's border: a few percent more there.
    assert s["data_error"] < (0.12 if stitcher == "mean" else 0.06)


def test_the_oracle_recovers_the_known_amplitude_scale_and_phase(core_host):
    cfg = SimConfig(train_objects=1, patch_size=16, object_size=64, step=3.0, jitter=0.0)
    _, test = simulate_pair(cfg)
    obj, weights = stitch.probe_weighted(test.gt_patches(), test.positions, test.object.shape, test.probe)
    box, keep = metrics.region(weights, test.positions)
    y0, y1, x0, x1 = box
    c = metrics.global_scalar(obj[y0:y1, x0:x1], test.object[y0:y1, x0:x1], keep)
    assert abs(c - 1) < 1e-5  # nothing to align: stitching preserves amplitude and phase
    np.testing.assert_allclose(obj[y0:y1, x0:x1][keep], test.object[y0:y1, x0:x1][keep], atol=1e-5)
