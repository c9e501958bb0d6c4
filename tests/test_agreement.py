"""Metrics without ground truth (`ptycho_core.agreement`) against known cases: a shifted, scaled and
phase-ramped copy agrees; noise lowers agreement monotonically; identical halves resolve to Nyquist
and independent noise crosses at once; the 1/2-bit threshold is van Heel & Schatz's."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ptycho_core import agreement, metrics

N = 96
POSITIONS = np.array([[16.0, 16.0], [16.0, 80.0], [80.0, 16.0], [80.0, 80.0]])
WEIGHTS = np.ones((N, N))


def _object(seed: int = 0) -> np.ndarray:
    """A complex object with structure at every scale: amplitude 0.3-1 and phase of +-1.5 rad."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    amp = ndimage.gaussian_filter(rng.random((N, N)), 1.0)
    amp = 0.3 + 0.7 * (amp - amp.min()) / np.ptp(amp)
    phase = ndimage.gaussian_filter(rng.standard_normal((N, N)), 1.5)
    return amp * np.exp(1.5j * phase / np.abs(phase).max())


def _noise(rng, scale: float) -> np.ndarray:
    return scale * (rng.standard_normal((N, N)) + 1j * rng.standard_normal((N, N)))


def test_half_bit_threshold_is_van_heel_and_schatz_for_half_data_sets():
    n = np.array([1.0, 8.0, 100.0, 1e6])
    published = (0.2071 + 1.9102 / np.sqrt(n)) / (1.2071 + 0.9102 / np.sqrt(n))
    assert np.allclose(agreement.half_bit_threshold(n), published, atol=2e-4)
    assert agreement.half_bit_threshold(np.array([0]))[0] == 1.0
    assert agreement.half_bit_threshold(np.array([1e12]))[0] == pytest.approx(0.2071 / 1.2071, abs=1e-4)


def test_interleaved_halves_split_the_scan_in_order():
    a, b = agreement.interleaved_halves(7)
    assert a.tolist() == [0, 2, 4, 6] and b.tolist() == [1, 3, 5]
    with pytest.raises(ValueError):
        agreement.interleaved_halves(1)


def test_a_shifted_scaled_phase_ramped_copy_agrees():
    obj = _object()
    yy, xx = np.indices((N, N))
    copy = metrics.fourier_shift(obj, (0.4, -0.7)) * 0.5 * np.exp(0.9j) * np.exp(1j * (0.05 * yy - 0.03 * xx))
    values, curves = agreement.agreement(copy, obj, WEIGHTS, POSITIONS)
    assert values["ref_shift_y"] == pytest.approx(-0.4, abs=0.05)
    assert values["ref_shift_x"] == pytest.approx(0.7, abs=0.05)
    assert values["ref_amp_ssim"] > 0.99 and values["ref_phase_ssim"] > 0.99
    assert values["ref_frc_amp_px"] < 2.5 and values["ref_frc_phase_px"] < 2.5
    assert set(curves) == {"amp", "phase"}


def test_noise_lowers_agreement_monotonically():
    obj = _object()
    rng = np.random.default_rng(1)
    rows = [agreement.agreement(obj + _noise(rng, s), obj, WEIGHTS, POSITIONS)[0] for s in (0.01, 0.04, 0.15)]
    for key in ("ref_amp_ssim", "ref_phase_ssim"):
        assert rows[0][key] > rows[1][key] > rows[2][key], key
    for key in ("ref_frc_amp_px", "ref_frc_phase_px"):
        assert rows[0][key] < rows[1][key] < rows[2][key], key


def test_identical_halves_resolve_to_nyquist_and_give_nm_with_a_pixel_size():
    obj = _object()
    values, curve = agreement.halfset_frc(obj, obj, WEIGHTS, POSITIONS, pixel_size_m=10e-9)
    side = values["half_frc_side"]
    assert side == 65  # the scan centres' box, 16..80 inclusive
    assert values["half_frc_px"] == pytest.approx(side / (side // 2))  # the last ring: Nyquist
    assert values["half_frc_nm"] == pytest.approx(values["half_frc_px"] * 10.0)
    assert len(curve["frc"]) == len(curve["threshold"]) == side // 2 + 1
    assert math.isnan(agreement.halfset_frc(obj, obj, WEIGHTS, POSITIONS)[0]["half_frc_nm"])


def test_independent_noise_halves_cross_at_once_and_noise_coarsens_the_half_set_frc():
    rng = np.random.default_rng(2)
    values, _ = agreement.halfset_frc(_noise(rng, 1), _noise(rng, 1), WEIGHTS, POSITIONS)
    assert values["half_frc_px"] > 20  # crosses in the first rings: nothing is resolved
    obj = _object()
    px = [
        agreement.halfset_frc(obj + _noise(rng, s), obj + _noise(rng, s), WEIGHTS, POSITIONS)[0]["half_frc_px"]
        for s in (0.02, 0.1, 0.4)
    ]
    assert px[0] < px[1] < px[2]


def test_halfset_frc_is_nan_when_the_halves_share_too_small_a_square():
    obj = _object()
    weights = np.zeros((N, N))
    weights[40:50, 40:50] = 1.0
    values, curve = agreement.halfset_frc(obj, obj, weights, POSITIONS)
    assert math.isnan(values["half_frc_px"]) and curve == {}


def test_overlap_weights_cover_only_where_both_are_covered():
    a, b = np.zeros((4, 4)), np.zeros((4, 4))
    a[:, :3], b[:, 1:] = 2.0, 5.0
    both = agreement.overlap_weights(a, b) >= metrics.REGION_WEIGHT_FRACTION
    assert both[:, 1:3].all() and not both[:, 0].any() and not both[:, 3].any()


def test_choose_reference_takes_the_requested_row_or_the_best_iterative_one():
    rows = [
        {"generator": "fno", "status": "ok", "kind": "learned", "data_error": 0.1},
        {"generator": "epie", "status": "ok", "kind": "iterative", "data_error": 0.3},
        {"generator": "lsqml", "status": "ok", "kind": "iterative", "data_error": 0.2},
        {"generator": "rpie", "status": "failed", "kind": "iterative", "data_error": None},
    ]
    assert agreement.choose_reference(rows) == "lsqml"
    assert agreement.choose_reference(rows, "fno") == "fno"
    with pytest.raises(ValueError, match="rpie"):
        agreement.choose_reference(rows, "rpie")
    assert agreement.choose_reference(rows[:1]) is None


def test_complex_frc_of_an_image_with_itself_is_one_at_every_ring():
    obj = _object()[:64, :64]
    freq, curve, counts = metrics.frc(obj, obj, with_counts=True)
    assert np.allclose(curve[1:], 1.0)
    assert counts.sum() <= 64 * 64 and counts[0] == 1


def test_every_agreement_key_is_a_registered_metric_of_its_kind():
    from ptycho_core import metric_registry

    declared = set(metric_registry.keys("agreement"))
    assert set(agreement.AGREEMENT_KEYS.values()) | set(agreement.HALFSET_KEYS) == declared
    assert metric_registry.metric("halfset_seconds").kind == "cost"
