"""Metrics against known answers (docs/design.md#scoring)."""

import math

import numpy as np
import pytest

from ptycho_core import metrics, physics
from ptycho_core.simulate import disk_probe, grf_object, lines_object

N = 16
SIZE = 64


def _scene(seed=0, texture=lines_object):
    """A complex object with structure at all scales, a scan over its centre and full weights."""
    rng = np.random.default_rng(seed)
    amp = 0.4 + 0.6 * texture(SIZE, rng)
    phase = 1.2 * texture(SIZE, rng)
    obj = (amp * np.exp(1j * phase)).astype(np.complex64)
    axis = np.arange(12.0, 52.0, 3.0)
    positions = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    weights = np.ones((SIZE, SIZE), np.float32)
    probe = disk_probe(N, 4.0)
    diffraction = physics.forward(probe, physics.extract(obj, positions, N))
    return obj, weights, positions, probe, diffraction


def _score(recon, scene, **kw):
    obj, weights, positions, probe, diffraction = scene
    return metrics.score(recon, weights, obj, positions, probe, diffraction, **kw)


def test_identical_images_score_perfectly():
    scene = _scene()
    s = _score(scene[0], scene)
    assert s["amp_ssim"] == pytest.approx(1.0) and s["phase_ssim"] == pytest.approx(1.0)
    assert s["amp_mae"] < 1e-6 and s["amp_rmse"] < 1e-6 and s["phase_mae"] < 1e-6 and s["phase_rmse"] < 1e-6
    assert s["amp_psnr"] > 100 and s["phase_psnr"] > 100
    assert s["frc_amp_px"] == pytest.approx(2.0) and s["frc_phase_cpp"] == pytest.approx(0.5)
    assert s["data_error"] < 1e-5 and s["data_scale"] == pytest.approx(1.0, rel=1e-5)
    assert all(isinstance(v, float) for v in s.as_dict().values())
    curve = s.frc["amp"]
    assert len(curve["frequency"]) == len(curve["frc"]) and curve["frequency"][1] > 0


def test_a_global_complex_scalar_is_removed():
    scene = _scene()
    s = _score(scene[0] * np.complex64(0.5 * np.exp(2.5j)), scene)
    assert s["amp_ssim"] == pytest.approx(1.0, abs=1e-6) and s["phase_mae"] < 1e-5 and s["amp_mae"] < 1e-5
    assert s["data_error"] < 1e-5 and s["data_scale"] == pytest.approx(2.0, rel=1e-4)


def test_registration_finds_a_known_subpixel_shift():
    scene = _scene(texture=grf_object)
    moved = metrics.fourier_shift(scene[0], (1.5, -0.75)).astype(np.complex64)
    plain = _score(moved, scene)
    registered = _score(moved, scene, register=True)
    assert registered["shift_y"] == pytest.approx(-1.5, abs=0.1)
    assert registered["shift_x"] == pytest.approx(0.75, abs=0.1)
    assert plain["shift_y"] == 0.0 and plain["shift_x"] == 0.0
    assert registered["amp_ssim"] > 0.99 > plain["amp_ssim"]
    assert registered["phase_mae"] < plain["phase_mae"] / 5


def test_phase_ramp_removal_takes_out_a_linear_ramp():
    scene = _scene()
    yy, xx = np.mgrid[:SIZE, :SIZE]
    ramped = (scene[0] * np.exp(1j * (0.2 * xx - 0.1 * yy + 1.0))).astype(np.complex64)
    s = _score(ramped, scene, remove_ramp=True)
    assert s["ramp_x"] == pytest.approx(0.2, abs=1e-4) and s["ramp_y"] == pytest.approx(-0.1, abs=1e-4)
    assert s["phase_mae"] < 1e-4 and s["phase_ssim"] == pytest.approx(1.0, abs=1e-4)
    assert _score(ramped, scene)["phase_mae"] > 0.5  # not removed by default


def test_gaussian_blur_lowers_the_frc_resolution_monotonically():
    from scipy.ndimage import gaussian_filter

    scene = _scene(seed=1)
    obj = scene[0]
    noise = np.random.default_rng(9).normal(scale=0.02, size=obj.shape)
    px = []
    for sigma in (0.0, 1.0, 2.0):
        amp = gaussian_filter(np.abs(obj).astype(np.float64), sigma) if sigma else np.abs(obj)
        recon = ((amp + noise) * np.exp(1j * np.angle(obj))).astype(np.complex64)
        px.append(_score(recon, scene)["frc_amp_px"])
    assert px[0] < px[1] < px[2]
    assert px[2] > 4.0  # a 2-pixel blur leaves nothing above ~0.2 cycles/pixel


def test_phase_wrapping_across_pi_gives_a_small_error():
    rng = np.random.default_rng(4)
    amp = 0.5 + 0.5 * grf_object(SIZE, rng)
    phase = np.pi + 1.5 * (grf_object(SIZE, rng) - 0.5)  # straddles +-pi after wrapping
    truth = (amp * np.exp(1j * phase)).astype(np.complex64)
    assert (np.angle(truth) > 3).any() and (np.angle(truth) < -3).any()
    recon = (truth * np.exp(1j * 0.01 * rng.normal(size=truth.shape))).astype(np.complex64)
    scene = (truth,) + _scene()[1:]
    s = _score(recon, scene)
    assert s["phase_mae"] < 0.02 and s["phase_rmse"] < 0.02
    assert s["phase_ssim"] > 0.95 and s["phase_psnr"] > 30


def test_data_space_error_is_zero_for_the_true_object_at_any_scale():
    obj, _, positions, probe, diffraction = _scene()
    err, s = metrics.data_space_error(3.0 * obj, positions, probe, diffraction, return_scale=True)
    assert err < 1e-5 and s == pytest.approx(1 / 3, rel=1e-5)
    assert metrics.data_space_error(obj * 0.9 + 0.1, positions, probe, diffraction) > 0.01


def test_data_space_error_ignores_invalid_detector_pixels():
    obj, _, positions, probe, diffraction = _scene()
    corrupted = diffraction.copy()
    corrupted[:, 3, 5] += 100.0
    mask = np.ones((N, N), bool)
    mask[3, 5] = False
    assert metrics.data_space_error(obj, positions, probe, corrupted) > 0.1
    assert metrics.data_space_error(obj, positions, probe, corrupted, mask=mask) < 1e-5


def test_without_ground_truth_only_the_data_error_is_scored():
    obj, weights, positions, probe, diffraction = _scene()
    s = metrics.score(obj, weights, None, positions, probe, diffraction)
    assert s["data_error"] < 1e-5
    assert math.isnan(s["amp_ssim"]) and math.isnan(s["frc_phase_px"]) and s.frc == {}


def test_region_is_the_scan_rectangle_with_enough_weight():
    weights = np.zeros((40, 50), np.float32)
    weights[5:35, 5:45] = 1.0
    weights[10:12, 10:12] = 0.05  # below 10% of the max
    positions = np.array([[8.2, 9.5], [30.0, 40.7]])
    box, mask = metrics.region(weights, positions)
    assert box == (9, 31, 10, 41)
    assert mask.shape == (22, 31) and not mask[1, 0] and mask[3, 2] and mask.sum() == 22 * 31 - 4


def test_frc_of_a_pure_noise_pair_crosses_early():
    rng = np.random.default_rng(5)
    freq, curve = metrics.frc(rng.normal(size=(64, 64)), rng.normal(size=(64, 64)))
    px, cpp = metrics.frc_resolution(freq, curve)
    assert px > 10 and cpp == pytest.approx(1 / px)


# --- partial coverage (issue 15) ------------------------------------------------------------------


def test_largest_square_finds_the_biggest_all_true_square_nearest_the_centre():
    mask = np.zeros((30, 40), bool)
    mask[2:12, 3:13] = True  # 10 x 10
    mask[15:27, 20:35] = True  # 12 x 15: squares of side 12 at x 20..23
    mask[20, 25] = False  # a hole: the second block now holds squares of side 9 at most
    assert metrics.largest_square(mask) == (2, 3, 10)
    mask[20, 25] = True
    y, x, side = metrics.largest_square(mask)
    assert (y, side) == (15, 12) and x in (20, 21, 22, 23) and mask[y : y + side, x : x + side].all()
    assert metrics.largest_square(np.zeros((5, 5), bool)) == (0, 0, 0)
    assert metrics.largest_square(np.ones((7, 4), bool))[2] == 4


def test_ssim_ignores_every_pixel_whose_window_leaves_the_covered_mask():
    rng = np.random.default_rng(1)
    truth = rng.random((40, 40))
    covered = np.ones((40, 40), bool)
    covered[15:20, 10:30] = False  # a hole
    recon = truth.copy()
    recon[~covered] = 0  # as stitched: uncovered pixels are 0 in the reconstruction only
    assert metrics.ssim(truth, recon, covered, 1.0) == pytest.approx(1.0)
    scored = metrics.scored_mask(covered)
    assert not scored[12:23, 7:33].any() and scored[11, 20] and scored[3:37, 3:37].sum() == scored.sum()
    other = np.where(covered, recon, rng.random((40, 40)))  # anything outside the mask: no effect
    assert metrics.ssim(truth, other, covered, 1.0) == metrics.ssim(truth, recon, covered, 1.0)


def test_the_frc_of_a_flat_image_resolves_nothing():
    rng = np.random.default_rng(2)
    _, curve = metrics.frc(np.full((32, 32), 0.7), rng.random((32, 32)))
    assert np.all(curve == 0)
    assert metrics.frc_resolution(*metrics.frc(np.full((32, 32), 0.7), rng.random((32, 32))))[0] == 32


def test_coverage_is_reported_and_the_frc_uses_only_a_wholly_covered_square():
    obj, weights, positions, probe, diffraction = _scene()
    weights = weights.copy()
    weights[20:24, 30:34] = 0  # a hole inside the 40 x 40 scan rectangle 12..51
    s = metrics.score(obj, weights, obj, positions, probe, diffraction)
    assert s["covered_fraction"] == pytest.approx(1 - 16 / 1600)
    assert s["scored_fraction"] == pytest.approx((34 * 34 - 10 * 10) / 1600)
    assert s["region_pixels"] == 1600 - 16 and s["frc_side"] == 28  # rows 24..51, below the hole
    assert s["frc_too_small"] == 0 and s["area_too_small"] == 0
    assert s["amp_ssim"] == pytest.approx(1.0) and s["frc_amp_px"] == pytest.approx(2.0)
    assert len(s.frc["amp"]["frc"]) == 28 // 2 + 1


def test_a_scored_area_too_small_to_mean_anything_gives_nan_and_a_flag():
    obj, weights, positions, probe, diffraction = _scene()
    sparse = np.zeros_like(weights)
    sparse[20:34, 20:34] = 1.0  # one covered 14 x 14 square: FRC needs 16, SSIM scores 8 x 8 pixels
    s = metrics.score(obj, sparse, obj, positions, probe, diffraction)
    assert s["frc_side"] == 14 and s["frc_too_small"] == 1.0 and s["area_too_small"] == 1.0
    for key in ("frc_amp_px", "frc_phase_cpp", "amp_ssim", "phase_ssim", "amp_psnr", "amp_mae", "phase_rmse"):
        assert math.isnan(s[key]), key
    assert s.frc == {} and s["covered_fraction"] == pytest.approx(196 / 1600)
    assert s["data_error"] < 1e-5  # the data-space error does not depend on the region
    sparse[20:36, 20:40] = 1.0  # 16 x 20: the FRC has its minimum square, SSIM 10 x 14 = 140 pixels
    s = metrics.score(obj, sparse, obj, positions, probe, diffraction)
    assert s["frc_too_small"] == 0.0 and s["frc_amp_px"] == pytest.approx(2.0) and s["area_too_small"] == 1.0


def test_twin_share_counts_the_patches_nearer_their_twin():
    from ptycho_core.simulate import DEFAULT_SIM, disk_probe, simulate_pair

    _, test = simulate_pair(DEFAULT_SIM.replace(train_objects=1, patch_size=16, object_size=40))
    truth = physics.extract(test.object, test.positions, 16)
    probe = test.probe
    support = np.abs(probe) > 0
    twin = np.conj(metrics.reflect(truth * probe)) / np.where(support, probe, 1)
    assert metrics.twin_share(truth, truth, probe) == 0.0
    assert metrics.twin_share(twin, truth, probe) == 1.0
    half = truth.copy()
    half[::2] = twin[::2]
    assert metrics.twin_share(half, truth, probe) == pytest.approx(0.5, abs=0.02)
    # a global phase per patch is free: a rotated truth is still the truth
    assert metrics.twin_share(truth * np.exp(1j * 2.0), truth, probe) == 0.0
    # under a real symmetric probe the twin is conj(o(-r)) itself
    disk = disk_probe(16, 4)
    assert metrics.twin_share(np.conj(metrics.reflect(truth)), truth, disk) == 1.0
