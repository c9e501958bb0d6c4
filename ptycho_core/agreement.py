"""Metrics without ground truth (issue 21, item 5): what ranks reconstructions of a measured scan.

Three measurements, each computed only from the data and the reconstructions themselves:

(a) Data error with the row's own probe and positions: `metrics.data_space_error` evaluated with
    the probe (and positions) the row ended with (an iterative engine's refined ones; a learned
    row's training probe), not the file's probe. With the file's probe a reconstruction whose
    engine refined the probe is charged for the probe it no longer uses.
(b) Agreement with a reference reconstruction (`agreement`): the row's object against the
    reference row's object, exactly as against a ground truth (`metrics.against`) but always
    with sub-pixel registration (phase correlation, upsampled 20x, re-estimated until the step is
    under 0.01 px), phase-ramp removal and one global complex scalar, over the pixels that both
    rows cover (weight >= 10% of each one's maximum): amplitude and phase SSIM, amplitude and
    phase FRC at the fixed 0.5 threshold (as against ground truth).
(c) Half-set FRC (`halfset_frc`): the scan is split into two interleaved halves (even and odd
    pattern indices, `interleaved_halves`), each half reconstructed independently, the first
    aligned onto the second (registration, ramp, scalar as in (b)) and the Fourier ring
    correlation of the two complex objects computed on the largest square both halves cover.
    The resolution is where it first falls below the 1/2-bit threshold of van Heel & Schatz,
    "Fourier shell correlation threshold criteria", J. Struct. Biol. 151, 250-262 (2005), in its
    form for two half data sets (`half_bit_threshold`): each half carries half the signal-to-noise
    ratio of the whole, so the half-sets are compared at SNR (sqrt(2) - 1) / 2 = 0.2071, which
    gives T(r) = (0.2071 + 1.9102 / sqrt(n_r)) / (1.2071 + 0.9102 / sqrt(n_r)), n_r the number
    of Fourier pixels in ring r. The resolution is the period 1 / f at the crossing, in pixels
    (2 px = Nyquist, also given when the curve never crosses) and in nm when the pixel size is
    known (the half-pitch is half of it).

Images are (H, W) complex on one object grid; positions (n, 2) (y, x) on it. numpy, scipy and
scikit-image only (through `ptycho_core.metrics`).
"""

from __future__ import annotations

import math

import numpy as np

from ptycho_core import metrics

#: Signal-to-noise ratio of one half data set at the 1/2-bit criterion: the whole data set
#: carries 1/2 bit per Fourier pixel (SNR sqrt(2) - 1) and each half half of that SNR.
HALF_BIT_SNR = (math.sqrt(2.0) - 1.0) / 2.0

#: metrics key -> agreement key (b): the row against the reference reconstruction.
AGREEMENT_KEYS = {
    "amp_ssim": "ref_amp_ssim",
    "phase_ssim": "ref_phase_ssim",
    "frc_amp_px": "ref_frc_amp_px",
    "frc_phase_px": "ref_frc_phase_px",
    "shift_y": "ref_shift_y",
    "shift_x": "ref_shift_x",
}

#: Keys of the half-set FRC (c).
HALFSET_KEYS = ("half_frc_px", "half_frc_cpp", "half_frc_nm", "half_frc_side")


def half_bit_threshold(counts: np.ndarray, snr: float = HALF_BIT_SNR) -> np.ndarray:
    """The van Heel & Schatz (2005) information threshold per ring, for `counts` Fourier pixels per
    ring: T = (e + (2 sqrt(e) + 1) / sqrt(n)) / (1 + e + 2 sqrt(e) / sqrt(n)) with e = `snr`.
    With the default (half data sets, 1/2 bit) this is (0.2071 + 1.9102 / sqrt(n)) /
    (1.2071 + 0.9102 / sqrt(n)); a ring of no pixel gets threshold 1."""
    root = np.sqrt(np.maximum(np.asarray(counts, dtype=np.float64), 1.0))
    e = float(snr)
    threshold = (e + (2.0 * math.sqrt(e) + 1.0) / root) / (1.0 + e + 2.0 * math.sqrt(e) / root)
    return np.where(np.asarray(counts) > 0, threshold, 1.0)


def interleaved_halves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The two interleaved halves of n scan positions: even and odd indices in scan order (each
    covers the whole field at half the density)."""
    if n < 2:
        raise ValueError(f"a half-set split needs at least 2 patterns, not {n}")
    return np.arange(0, n, 2), np.arange(1, n, 2)


def overlap_weights(*weights: np.ndarray) -> np.ndarray:
    """Weights that are >= 10% of their maximum exactly where every input is (`metrics.region`):
    the pixel-wise minimum of each map divided by its own maximum."""
    scaled = [np.asarray(w, dtype=np.float64) / max(float(np.max(w)), 1e-300) for w in weights]
    return np.minimum.reduce(scaled)


def agreement(
    recon: np.ndarray, reference: np.ndarray, weights: np.ndarray, positions: np.ndarray
) -> tuple[dict, dict]:
    """(b) `recon` against the `reference` reconstruction, registered, de-ramped and scaled.

    weights: coverage of both (`overlap_weights` of the two rows' weights); positions: the scan
    centres spanning the scored box. Returns ({AGREEMENT_KEYS values: floats, NaN when the
    covered area is too small}, {"amp"/"phase": FRC curves}).
    """
    scores = metrics.against(recon, reference, weights, positions, register=True, remove_ramp=True)
    values = {new: float(scores.values[old]) for old, new in AGREEMENT_KEYS.items()}
    return values, scores.frc


def halfset_frc(
    half_a: np.ndarray,
    half_b: np.ndarray,
    weights: np.ndarray,
    positions: np.ndarray,
    pixel_size_m: float | None = None,
) -> tuple[dict, dict]:
    """(c) The half-set FRC resolution of two independent reconstructions of the two halves.

    weights: where both halves are covered (`overlap_weights`); positions: all scan centres (the
    scored box). `half_a` is registered, de-ramped and scaled onto `half_b` over the covered
    pixels, then the complex FRC on the largest covered square is read at the 1/2-bit threshold.
    Returns ({half_frc_px, half_frc_cpp, half_frc_nm (NaN without pixel size), half_frc_side},
    {"frequency", "frc", "threshold"}); the numbers are NaN when the covered square is under
    `metrics.FRC_MIN_SIDE` pixels.
    """
    values = dict.fromkeys(HALFSET_KEYS, math.nan)
    half_a, half_b = np.asarray(half_a), np.asarray(half_b)
    if half_a.shape != half_b.shape or np.shape(weights) != half_a.shape:
        raise ValueError(f"halves {half_a.shape}, {half_b.shape} and weights {np.shape(weights)} must match")
    box, keep = metrics.region(weights, positions)
    y, x, side = metrics.largest_square(keep)
    values["half_frc_side"] = float(side)
    if side < metrics.FRC_MIN_SIDE:
        return values, {}
    shifts: dict = {}
    r, g = metrics.aligned(half_a, half_b, box, keep, shifts, register=True, remove_ramp=True)
    square = slice(y, y + side), slice(x, x + side)
    freq, curve, counts = metrics.frc(r[square], g[square], with_counts=True)
    threshold = half_bit_threshold(counts)
    px, cpp = metrics.frc_resolution(freq, curve, threshold)
    values.update(half_frc_px=px, half_frc_cpp=cpp)
    if pixel_size_m and pixel_size_m > 0 and math.isfinite(px):
        values["half_frc_nm"] = px * pixel_size_m * 1e9
    curves = {"frequency": freq.tolist(), "frc": [float(v) for v in curve], "threshold": threshold.tolist()}
    return values, curves


def choose_reference(rows: list[dict], requested: str | None = None) -> str | None:
    """The reference row's generator for (b): `requested` when given (it must be a successful row:
    ValueError otherwise), else the successful iterative row with the lowest data error (a) (the
    first in order among equals; rows without a finite data error last), else None.

    rows: dicts with "generator", "status", "kind" and "data_error" (the report's rows or runs).
    """
    ok = [r for r in rows if r.get("status") == "ok"]
    if requested is not None:
        if not any(r["generator"] == requested for r in ok):
            names = ", ".join(sorted({r["generator"] for r in ok})) or "none"
            raise ValueError(f"--reference {requested}: no successful row of that name (rows: {names})")
        return requested
    iterative = [r for r in ok if r.get("kind") == "iterative"]
    if not iterative:
        return None

    def key(row: dict) -> float:
        value = row.get("data_error")
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.inf

    return min(iterative, key=key)["generator"]


def method_paragraphs(reference: dict | None = None) -> list[str]:
    """One paragraph per metric without ground truth, as the report states them; `reference`: the
    provenance's {"row", "rule"} of the agreement metrics."""
    ref = (reference or {}).get("row")
    named = (
        f"The reference row is {ref} ({(reference or {}).get('rule', '')})."
        if ref
        else "There was no reference row (no successful iterative row), so no agreement was measured."
    )
    return [
        "Data error (data err): each row's object is cut at the test positions and propagated with the "
        "row's own final probe and positions (an iterative engine's refined probe and positions; a learned "
        "row's training probe), one real scale s is fitted, and ||s A_hat - A|| / ||A|| is taken over the "
        "valid detector pixels. Lower is better; it needs no ground truth but rewards fitting noise.",
        "Agreement with the reference (ref amp SSIM, ref phase SSIM, ref FRC amp/phase px): each row's "
        "object against the reference row's object, over the pixels both cover (weight >= 10% of each "
        "one's maximum), after sub-pixel registration (phase correlation upsampled 20x, repeated until the "
        "step is under 0.01 px), removal of the linear phase ramp between the two and one global complex "
        "scalar; amplitude and phase SSIM (window 7) and FRC read at 0.5, exactly as against a ground "
        f"truth. It says how close a row comes to the reference, not which is right. {named}",
        "Half-set FRC (half FRC px / nm): the test scan is split into two interleaved halves (even and odd "
        "pattern indices), each half is reconstructed on its own (iterative rows: two more engine runs with "
        "the same options, their time in 'half s'; learned rows: each half predicted, grouped within the "
        "half, and stitched), the first half is aligned onto the second as above, and the Fourier ring "
        "correlation of the two complex objects on the largest square both cover is read where it first "
        "falls below the 1/2-bit threshold for half data sets of van Heel & Schatz, J. Struct. Biol. 151, "
        "250 (2005): T = (0.2071 + 1.9102/sqrt(n)) / (1.2071 + 0.9102/sqrt(n)), n the Fourier pixels in "
        "the ring. The resolution is the period 1/f at the crossing in pixels (2 = Nyquist, also when it "
        "never crosses) and in nm when the pixel size is known; lower is better. It measures what the data "
        "support consistently, not bias shared by both halves (e.g. a wrong probe).",
    ]
