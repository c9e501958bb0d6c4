"""Sanity rows: every metric is honest on full and partial coverage (issue 15, docs/design.md#scoring).

The ground truth's own patches, stitched and scored against it, are perfect on every metric; pure
noise, a flat object, the object shifted by a few pixels and the twin image each score badly on
every metric (amplitude and phase: FRC resolution, SSIM, PSNR, MAE). Each row is checked on a dense
raster scan (the scan rectangle wholly covered) and on a sparse random scan whose stitched weight
map has holes inside the rectangle, with both built-in stitchers. Numpy only, seeded, a few seconds.

Positions are whole pixels so that extract-then-stitch is exact and "perfect" can be asserted
tightly (sub-pixel smoothing of the oracle is pinned in test_oracle.py).

Each test checks every (scan, stitcher) pair and reports all that fail. With the old scoring (FRC
on the masked images, SSIM windows running into uncovered pixels) every test here fails on the
sparse scan: the shared mask made the amplitude FRC of a shifted, twin or flat object reach the
Nyquist limit, and deflated the truth's own amplitude SSIM to 0.6-0.7.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import ndimage

from ptycho_core import metrics, physics, stitch
from ptycho_core.simulate import disk_probe, lines_object

SIZE, N = 128, 32
STITCHERS = ("probe_weighted", "mean")
SCANS = ("dense", "sparse")
SHIFT = (3.0, -3.0)  # "a few pixels": the lines object's features are ~2-6 px wide

# --- thresholds ---------------------------------------------------------------------------------
# Perfect: what an exact round trip gives, up to float32 rounding.
PERFECT_SSIM = 0.999
PERFECT_PSNR_DB = 80.0
PERFECT_MAE = 1e-5
# The FRC of identical images never crosses 0.5, so the resolution is the last ring of the square:
# 2 px on an even side S, 2 S / (S - 1) on an odd one (2.09 px at S = 23).
PERFECT_FRC_PX = 2.2
# Bad: every metric must put these far from the truth, with room to spare on each side.
# SSIM below 0.5: half of what the truth scores; measured 0.42 at most (the shifted object).
BAD_SSIM = 0.5
# FRC resolution coarser than 6 px, three times the Nyquist limit the truth reaches; measured
# 13.6 px at best (the shifted amplitude).
BAD_FRC_PX = 6.0
# PSNR below 25 dB, an rms error above 5.6% of the ground truth's range; measured 19 dB at most.
BAD_PSNR_DB = 25.0
# MAE above 5% of the ground truth's range (amplitude 0.7, phase pi/2); measured 8% and 12% at least.
BAD_MAE_FRACTION = 0.05


@functools.cache
def _object() -> np.ndarray:
    """A `lines` object: amplitude 0.3 + 0.7 t1 in [0.3, 1], phase pi/2 t2 from an independent
    texture t2 (so amplitude and phase metrics are tested apart)."""
    rng = np.random.default_rng(3)
    amplitude, phase = 0.3 + 0.7 * lines_object(SIZE, rng), (np.pi / 2) * lines_object(SIZE, rng)
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


@functools.cache
def _positions(scan: str) -> np.ndarray:
    """Dense: a raster with step N/8 (the rectangle wholly covered). Sparse: 60 uniformly random
    positions, which leave holes inside the rectangle with the N/4 disk probe."""
    if scan == "dense":
        axis = np.arange(N // 2, SIZE - N // 2, N / 8)
        return np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    rng = np.random.default_rng(0)
    return rng.integers(N // 2, SIZE - N // 2, size=(60, 2)).astype(np.float64)


def _probe() -> np.ndarray:
    return disk_probe(N, N / 4)


def _patches(case: str, positions: np.ndarray) -> np.ndarray:
    """(n, N, N) patches of one sanity row at `positions` (what a generator would predict)."""
    obj = _object()
    truth = physics.extract(obj, positions, N)
    if case == "truth":
        return truth
    if case == "noise":  # the truth's amplitude and phase ranges, no structure in common with it
        rng = np.random.default_rng(7)
        amp, phase = rng.uniform(0.3, 1.0, truth.shape), rng.uniform(0.0, np.pi / 2, truth.shape)
        return (amp * np.exp(1j * phase)).astype(np.complex64)
    if case == "flat":
        return np.full_like(truth, 0.65 * np.exp(0.8j))
    if case == "shift":
        return physics.extract(obj, positions + np.array(SHIFT), N)
    if case == "twin":  # per pattern, what a gridsize-1 network may converge to: with this
        return np.conj(truth[:, ::-1, ::-1])  # symmetric probe it has the same |F(P o)| (to 1 px)
    raise ValueError(case)


def _stitched(patches: np.ndarray, scan: str, stitcher: str) -> tuple[np.ndarray, np.ndarray]:
    return getattr(stitch, stitcher)(patches, _positions(scan), (SIZE, SIZE), _probe())


def _score(patches: np.ndarray, scan: str, stitcher: str) -> metrics.Scores:
    positions, probe, obj = _positions(scan), _probe(), _object()
    recon, weights = _stitched(patches, scan, stitcher)
    diffraction = physics.forward(probe, physics.extract(obj, positions, N))
    return metrics.score(recon, weights, obj, positions, probe, diffraction)


def _ranges(scan: str, stitcher: str) -> tuple[float, float]:
    """Ground-truth amplitude and phase ranges over the covered region (the PSNR peaks)."""
    obj = _object()
    _, weights = _stitched(_patches("truth", _positions(scan)), scan, stitcher)
    (y0, y1, x0, x1), keep = metrics.region(weights, _positions(scan))
    g = obj[y0:y1, x0:x1][keep]
    return float(np.ptp(np.abs(g))), float(np.ptp(np.angle(g)))


def _failures(case: str, check) -> list[str]:
    """`check(scores, scan, stitcher)` -> list of complaints, over every scan and stitcher."""
    out = []
    for scan in SCANS:
        for stitcher in STITCHERS:
            s = _score(_patches(case, _positions(scan)), scan, stitcher)
            out += [f"{case} / {scan} / {stitcher}: {msg}" for msg in check(s, scan, stitcher)]
    return out


# --- the scans are what they claim ----------------------------------------------------------------


@pytest.mark.parametrize("stitcher", STITCHERS)
def test_the_sparse_scan_has_holes_inside_the_rectangle_and_the_dense_one_none(stitcher):
    for scan, has_holes in (("dense", False), ("sparse", True)):
        _, weights = _stitched(_patches("truth", _positions(scan)), scan, stitcher)
        _, keep = metrics.region(weights, _positions(scan))
        holes, count = ndimage.label(~keep)
        edge = set(np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]])))
        inner = [k for k in range(1, count + 1) if k not in edge]
        assert bool(inner) == has_holes, (scan, count)
        s = _score(_patches("truth", _positions(scan)), scan, stitcher)
        assert (s["covered_fraction"] == 1.0) == (not has_holes)
        assert s["frc_side"] >= metrics.FRC_MIN_SIDE and s["frc_too_small"] == 0 and s["area_too_small"] == 0


# --- the sanity rows ------------------------------------------------------------------------------


def test_the_truth_scored_against_itself_is_perfect_on_every_metric():
    def check(s, scan, stitcher):
        bad = []
        for part in ("amp", "phase"):
            if not s[f"{part}_ssim"] > PERFECT_SSIM:
                bad.append(f"{part} SSIM {s[f'{part}_ssim']:.4f}")
            if not s[f"{part}_psnr"] > PERFECT_PSNR_DB:
                bad.append(f"{part} PSNR {s[f'{part}_psnr']:.1f}")
            if not s[f"{part}_mae"] < PERFECT_MAE:
                bad.append(f"{part} MAE {s[f'{part}_mae']:.2g}")
            if not s[f"frc_{part}_px"] < PERFECT_FRC_PX or min(s.frc[part]["frc"][1:]) < 0.99:
                bad.append(f"{part} FRC {s[f'frc_{part}_px']:.2f} px")
        return bad

    assert _failures("truth", check) == []


@pytest.mark.parametrize("case", ["noise", "flat", "shift", "twin"])
def test_a_wrong_object_scores_badly_on_every_metric(case):
    def check(s, scan, stitcher):
        amp_range, phase_range = _ranges(scan, stitcher)
        bad = []
        for part, rng in (("amp", amp_range), ("phase", phase_range)):
            if not s[f"{part}_ssim"] < BAD_SSIM:
                bad.append(f"{part} SSIM {s[f'{part}_ssim']:.3f}")
            if not s[f"{part}_psnr"] < BAD_PSNR_DB:
                bad.append(f"{part} PSNR {s[f'{part}_psnr']:.1f}")
            if not s[f"{part}_mae"] > BAD_MAE_FRACTION * rng:
                bad.append(f"{part} MAE {s[f'{part}_mae']:.3f}")
            if not s[f"frc_{part}_px"] > BAD_FRC_PX:
                bad.append(f"{part} FRC {s[f'frc_{part}_px']:.2f} px")
        return bad

    assert _failures(case, check) == []


# --- the bug ------------------------------------------------------------------------------


def _old_frc_px(recon, weights) -> float:
    """The amplitude FRC as scored before issue 15: both images zeroed outside the covered mask,
    central square of the scan rectangle (the mask itself is then structure common to both)."""
    obj, positions = _object(), _positions("sparse")
    (y0, y1, x0, x1), keep = metrics.region(weights, positions)
    r, g = recon[y0:y1, x0:x1], obj[y0:y1, x0:x1]
    r = metrics.global_scalar(r, g, keep) * r
    s = min(keep.shape)
    sy, sx = slice((keep.shape[0] - s) // 2, None), slice((keep.shape[1] - s) // 2, None)
    a, b = (np.where(keep, np.abs(im), 0)[sy, sx][:s, :s] for im in (r, g))
    return metrics.frc_resolution(*metrics.frc(a, b))[0]


@pytest.mark.parametrize("stitcher", STITCHERS)
def test_a_blob_on_a_sparse_scan_with_holes_no_longer_reaches_the_nyquist_limit(stitcher):
    truth = _patches("truth", _positions("sparse"))
    blob = np.stack([ndimage.gaussian_filter(p.real, 4) + 1j * ndimage.gaussian_filter(p.imag, 4) for p in truth])
    s = _score(blob, "sparse", stitcher)
    recon, weights = _stitched(blob, "sparse", stitcher)
    assert _old_frc_px(recon, weights) < 2.1  # the bug: a blob "resolved" at Nyquist
    assert s["frc_amp_px"] > BAD_FRC_PX and s["frc_phase_px"] > BAD_FRC_PX
    assert s["amp_ssim"] < 0.8
