"""Alignment and metrics of a stitched reconstruction (docs/design.md#scoring).

`score(...)` runs, per reconstruction:

1. Region: the rectangle spanned by the scan centres; its *covered* pixels are those with
   stitching weight >= 10% of the max. Uncovered pixels (holes of a sparse scan, the border) are
   0 in the stitched object and are never scored: no metric may see the mask itself, because a
   mask shared by reconstruction and truth is structure common to both at every frequency.
2. Alignment, in order: optional sub-pixel registration (`phase_cross_correlation` on the complex
   image; off by default; the shift applied is reported), optional phase-ramp removal, then one
   global complex scalar c = sum(conj(r) g) / sum(|r|^2) over the covered pixels, r <- c r.
3. Amplitude: MAE, RMSE, PSNR over the covered pixels (peak = ground-truth amplitude range over
   them); SSIM (data_range = that range, window 7) averaged only over the *scored* pixels: those
   whose whole 7x7 window lies inside the covered mask (the mask eroded by the window), so no
   window mixes in uncovered pixels.
4. Phase: error = wrapped angle(r conj(g)) -> MAE, RMSE (radians) over the covered pixels; SSIM
   (scored pixels), PSNR and FRC on the phase images after removing each image's
   amplitude-weighted mean phase, data_range = the ground truth's phase range.
5. FRC only where both images are defined: on the largest square lying wholly inside the covered
   mask (the one nearest the centre among equals), each image minus its taper-weighted mean and
   Hann-apodised inside that square; 1-pixel rings; the resolution is the first crossing of the
   fixed threshold 0.5 (`FRC_THRESHOLD`), in pixels and cycles/pixel; the curves are returned.
   A ring where either image has no power correlates 0 (a flat image resolves nothing).
6. Data-space error (with or without ground truth): the stitched object cut at the test
   positions, forward model, one fitted real scale s, ||s A_hat - A|| / ||A|| over valid pixels.
7. Twin-image share (`twin_share`, from the predicted patches, with ground truth): the fraction of
   test patches whose exit wave is nearer the twin conj(psi(-r)) of the true exit wave psi = P o
   than psi itself (both after the best complex scalar), the failure no single pattern can reveal.

Every key is declared in `ptycho_core.metric_registry` (the kinds it calls `SCORED`); `score`
sets them all, NaN where not computable (`twin_share` is set by `pipeline.score_object`, which has
the predicted patches).

Coverage, reported with the metrics: `covered_fraction` and `scored_fraction` (covered and
SSIM-scored pixels over the rectangle's pixels), `frc_side` (side of the FRC square, pixels).
Too small to mean anything, and then NaN with a flag set to 1.0 instead of a number:
- the FRC (`frc_too_small`) when the square is under `FRC_MIN_SIDE` = 16 pixels: it would have
  fewer than 8 rings, the first of them holding a handful of independent Fourier samples, so
  that two unrelated images cross 0.5 at random there;
- SSIM, PSNR, MAE and RMSE (`area_too_small`) when fewer than `MIN_SCORED_PIXELS` = 256 pixels
  (a 16 x 16 square's worth, about five independent SSIM windows) are scored.

Images are (H, W) on the ground truth's pixel grid; positions (n, 2) are (y, x) in those pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ptycho_core import metric_registry, physics

#: Region pixels must have at least this fraction of the maximum stitching weight.
REGION_WEIGHT_FRACTION = 0.1
SSIM_WINDOW = 7
FRC_THRESHOLD = 0.5
#: Smallest FRC square side (pixels); a smaller covered square gives NaN and `frc_too_small`.
FRC_MIN_SIDE = 16
#: Fewest SSIM-scored pixels for the pixel metrics; fewer gives NaN and `area_too_small`.
MIN_SCORED_PIXELS = FRC_MIN_SIDE**2


@dataclass
class Scores:
    """Metric values (plain floats, NaN when not computable) and FRC curves.

    `frc` maps "amp" / "phase" to {"frequency": cycles/pixel list, "frc": list}; `region` is the
    scored box (y0, y1, x0, x1), half-open, in canvas pixels.
    """

    values: dict = field(default_factory=dict)
    frc: dict = field(default_factory=dict)
    region: tuple = ()

    def as_dict(self) -> dict:
        """The metric values only: a flat dict of floats."""
        return dict(self.values)

    def to_json(self) -> dict:
        """Values, FRC curves and region: JSON-able (NaN/inf as Python floats)."""
        return {"metrics": dict(self.values), "frc": self.frc, "region": list(self.region)}

    def __getitem__(self, key: str) -> float:
        return self.values[key]


# --- pieces -----------------------------------------------------------------------------------


def region(weights: np.ndarray, positions: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The scored region: box (y0, y1, x0, x1) spanned by the scan centres, clipped to the canvas,
    and the bool mask (box shape) of its pixels with weight >= 10% of the maximum weight."""
    weights = np.asarray(weights, dtype=np.float64)
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    h, w = weights.shape
    y0 = max(int(math.ceil(pos[:, 0].min())), 0)
    y1 = min(int(math.floor(pos[:, 0].max())) + 1, h)
    x0 = max(int(math.ceil(pos[:, 1].min())), 0)
    x1 = min(int(math.floor(pos[:, 1].max())) + 1, w)
    if y1 <= y0 or x1 <= x0:
        raise ValueError(f"the scan centres span no pixel of the {h}x{w} canvas")
    box = weights[y0:y1, x0:x1]
    top = float(weights.max())
    mask = box >= REGION_WEIGHT_FRACTION * top if top > 0 else np.zeros(box.shape, dtype=bool)
    return (y0, y1, x0, x1), mask


def registration_shift(recon: np.ndarray, ground_truth: np.ndarray, upsample: int = 20) -> tuple[float, float]:
    """Sub-pixel shift (dy, dx) that registers `recon` onto `ground_truth` (same-shape complex
    crops): applying it to `recon` aligns the two. Mean-removed, Hann-tapered phase correlation."""
    # lazy: import time (scikit-image), only this function needs it
    from skimage.registration import phase_cross_correlation

    taper = np.outer(np.hanning(recon.shape[0]), np.hanning(recon.shape[1]))
    ref = (ground_truth - ground_truth.mean()) * taper
    mov = (recon - recon.mean()) * taper
    shift, _, _ = phase_cross_correlation(ref, mov, upsample_factor=upsample, normalization=None)
    return float(shift[0]), float(shift[1])


def _iterative_registration(recon_full, truth_box, box, keep, rounds=6, tol=0.01) -> tuple[float, float]:
    """Registration shift of the full canvas `recon_full` onto the ground truth over `box`.

    The taper and crop are the same for both images, which biases one estimate towards zero;
    re-estimating on the shifted reconstruction removes that bias in a few rounds.
    """
    y0, y1, x0, x1 = box
    total = np.zeros(2)
    moved = recon_full
    for _ in range(rounds):
        step = np.array(registration_shift(moved[y0:y1, x0:x1] * keep, truth_box * keep))
        total += step
        moved = fourier_shift(recon_full, tuple(total))
        if np.abs(step).max() < tol:
            break
    return float(total[0]), float(total[1])


def fourier_shift(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """`image` (H, W) complex translated by `shift` (dy, dx) pixels (periodic, sub-pixel)."""
    from scipy import ndimage  # lazy: import time (scipy), only this function needs it

    return np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(image), shift))


def phase_ramp(recon: np.ndarray, ground_truth: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Linear phase ramp (radians/pixel along y, x) of recon relative to ground truth, from the
    amplitude-weighted mean phase difference of neighbouring pixels (robust to phase wraps)."""
    z = np.where(mask, recon * np.conj(ground_truth), 0)
    gy = np.angle(np.sum(z[1:, :] * np.conj(z[:-1, :])))
    gx = np.angle(np.sum(z[:, 1:] * np.conj(z[:, :-1])))
    return float(gy), float(gx)


def global_scalar(recon: np.ndarray, ground_truth: np.ndarray, mask: np.ndarray) -> complex:
    """c = sum(conj(r) g) / sum(|r|^2) over the mask: the complex scalar that best maps r onto g."""
    r = recon[mask].astype(np.complex128)
    g = ground_truth[mask].astype(np.complex128)
    den = float(np.sum(np.abs(r) ** 2))
    return complex(np.sum(np.conj(r) * g) / den) if den > 0 else complex("nan")


def wrap(phase: np.ndarray) -> np.ndarray:
    """Angles wrapped to (-pi, pi]."""
    return np.angle(np.exp(1j * np.asarray(phase)))


def _psnr(peak: float, rmse: float) -> float:
    if not peak > 0:
        return math.nan
    return math.inf if rmse == 0 else 20.0 * math.log10(peak / rmse)


def scored_mask(covered: np.ndarray) -> np.ndarray:
    """The pixels whose whole SSIM window (7 x 7, centred) lies inside `covered` (and the box):
    the covered mask eroded by the window, pixels within 3 of the box edge dropped."""
    from scipy.ndimage import binary_erosion  # lazy: import time (scipy), only this function needs it

    window = np.ones((SSIM_WINDOW, SSIM_WINDOW), dtype=bool)
    return binary_erosion(np.asarray(covered, dtype=bool), structure=window, border_value=0)


def ssim(reference: np.ndarray, image: np.ndarray, mask: np.ndarray, data_range: float) -> float:
    """Mean SSIM (window 7) over the pixels whose whole window lies inside `mask` (the covered
    pixels): values outside the mask never enter a window that is averaged. NaN if none."""
    from skimage.metrics import structural_similarity  # lazy: import time (scikit-image), only this function needs it

    scored = scored_mask(mask)
    if not data_range > 0 or min(reference.shape) < SSIM_WINDOW or not scored.any():
        return math.nan
    _, smap = structural_similarity(
        reference.astype(np.float64), image.astype(np.float64), data_range=data_range, win_size=SSIM_WINDOW, full=True
    )
    return float(smap[scored].mean())


def _centred(image: np.ndarray, taper: np.ndarray, scale: float) -> np.ndarray:
    """image minus its taper-weighted mean, times the taper (zero DC, no shared taper term); all
    zeros when the image is flat to float32 precision relative to `scale` (the larger magnitude of
    the pair): its rounding residue must not be read as structure by the scale-free FRC."""
    image = np.asarray(image, dtype=np.float64)
    if np.ptp(image) <= 1e-6 * scale:
        return np.zeros_like(image)
    return (image - np.sum(image * taper) / np.sum(taper)) * taper


def frc(image: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fourier ring correlation of two real (S, S) images, mean-removed and Hann-apodised.

    Returns (frequency in cycles/pixel for rings k = 0..S//2, i.e. k / S; FRC per ring). A ring
    where either image has no power correlates 0.
    """
    s = image.shape[0]
    taper = np.outer(np.hanning(s), np.hanning(s))
    scale = max(float(np.abs(image).max()), float(np.abs(reference).max()), 1e-30)
    fa = np.fft.fftshift(np.fft.fft2(_centred(image, taper, scale)))
    fb = np.fft.fftshift(np.fft.fft2(_centred(reference, taper, scale)))
    ky, kx = np.indices((s, s)) - s // 2
    ring = np.rint(np.hypot(ky, kx)).astype(np.int64).ravel()
    n_rings = s // 2 + 1
    cross = fa * np.conj(fb)
    num_re = np.bincount(ring, cross.real.ravel(), minlength=n_rings)[:n_rings]
    num_im = np.bincount(ring, cross.imag.ravel(), minlength=n_rings)[:n_rings]
    pa = np.bincount(ring, (np.abs(fa) ** 2).ravel(), minlength=n_rings)[:n_rings]
    pb = np.bincount(ring, (np.abs(fb) ** 2).ravel(), minlength=n_rings)[:n_rings]
    den = np.sqrt(pa * pb)
    curve = np.hypot(num_re, num_im) / np.where(den > 0, den, 1.0)
    return np.arange(n_rings) / s, np.where(den > 0, curve, 0.0)


def frc_resolution(frequency: np.ndarray, curve: np.ndarray, threshold: float = FRC_THRESHOLD) -> tuple[float, float]:
    """(resolution in pixels, cycles/pixel) at the first crossing of `threshold` from ring 1 on,
    linearly interpolated; Nyquist (2 px, 0.5 cycles/pixel at even S) when it never crosses."""
    if len(curve) < 2:
        return math.nan, math.nan
    for k in range(1, len(curve)):
        if np.isfinite(curve[k]) and curve[k] < threshold:
            if k == 1 or not np.isfinite(curve[k - 1]):
                f = float(frequency[k])
            else:
                t = (curve[k - 1] - threshold) / (curve[k - 1] - curve[k])
                f = float(frequency[k - 1] + t * (frequency[k] - frequency[k - 1]))
            return 1.0 / f, f
    f = float(frequency[-1])
    return 1.0 / f, f


def largest_square(mask: np.ndarray) -> tuple[int, int, int]:
    """(y0, x0, side) of the largest all-True square in the bool `mask`; among equal squares the
    one nearest the centre; (0, 0, 0) when the mask is empty.

    Same answer as the maximal-square dynamic programme, vectorised: a summed-area table of the
    False pixels says where a square of side s holds none, and s is found by bisection (if s
    fits, s - 1 does).
    """
    mask = np.asarray(mask, dtype=bool)
    holes = np.pad((~mask).cumsum(0).cumsum(1), ((1, 0), (1, 0)))

    def fits(s: int) -> np.ndarray:  # top-left corners of the all-True s x s squares
        return (holes[s:, s:] - holes[:-s, s:] - holes[s:, :-s] + holes[:-s, :-s]) == 0

    lo, hi = 0, min(mask.shape)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid).any() else (lo, mid - 1)
    if lo == 0:
        return 0, 0, 0
    ys, xs = np.nonzero(fits(lo))
    near = np.argmin((ys - (mask.shape[0] - lo) / 2) ** 2 + (xs - (mask.shape[1] - lo) / 2) ** 2)
    return int(ys[near]), int(xs[near]), lo


def reflect(a: np.ndarray) -> np.ndarray:
    """a(-r) about the patch centre pixel (N//2, N//2), on the last two axes: u -> (N - u) mod N."""
    return np.roll(np.flip(a, (-2, -1)), 1, (-2, -1))


def twin_share(patches: np.ndarray, truth: np.ndarray, probe: np.ndarray) -> float:
    """Fraction of predicted patches nearer the twin image of their true patch than the patch itself.

    A single diffraction pattern cannot tell the exit wave psi = P o from its twin conj(psi(-r))
    (same far-field amplitudes). Per patch, compare the predicted exit wave P o_hat with psi and
    with its twin over the probe's support (|P| > 10 % of max), each after the best complex scalar
    (the global phase of one pattern is free); the patch counts as a twin when the twin is nearer.
    patches, truth (n, N, N) complex; probe (N, N). 0 for a faithful model, about 0.5 for one that
    picks either branch at random, near 1 for a model that learned the twin.
    """
    probe = np.asarray(probe)
    support = np.abs(probe) > 0.1 * np.abs(probe).max()
    pred = (np.asarray(patches) * probe)[:, support].astype(np.complex128)
    wave = np.asarray(truth) * probe
    dist_true = _scalar_residual(pred, wave[:, support])
    dist_twin = _scalar_residual(pred, np.conj(reflect(wave))[:, support])
    return float(np.mean(dist_twin < dist_true)) if len(pred) else math.nan


def _scalar_residual(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row: min over complex c of ||c a - b|| / ||b|| (a, b (n, k) complex)."""
    b = b.astype(np.complex128)
    num = np.sum(np.conj(a) * b, axis=1)
    den = np.maximum(np.sum(np.abs(a) ** 2, axis=1), 1e-30)
    c = num / den
    return np.linalg.norm(c[:, None] * a - b, axis=1) / np.maximum(np.linalg.norm(b, axis=1), 1e-30)


def _mean_phase_removed(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Phase image after removing the amplitude-weighted (circular) mean phase over the mask."""
    mean = np.angle(np.sum(image[mask]))
    return np.angle(image * np.exp(-1j * mean))


def data_space_error(
    recon: np.ndarray,
    positions: np.ndarray,
    probe: np.ndarray,
    diffraction: np.ndarray,
    mask: np.ndarray | None = None,
    return_scale: bool = False,
):
    """||s A_hat - A|| / ||A|| over valid detector pixels, with A_hat = forward(probe,
    extract(recon, positions)) and s the least-squares real scale.

    recon (H, W) complex stitched object; positions (n, 2) (y, x) on its grid; probe (N, N);
    diffraction (n, N, N) measured amplitudes; mask (N, N) or (n, N, N) bool, True = valid.
    Returns the relative error (float), or (error, s) when `return_scale`.
    """
    diffraction = np.asarray(diffraction, dtype=np.float64)
    n_pix = diffraction.shape[-1]
    model = physics.forward(probe, physics.extract(recon, np.asarray(positions).reshape(-1, 2), n_pix))
    model = model.astype(np.float64)
    valid = np.ones(diffraction.shape, dtype=bool) if mask is None else np.broadcast_to(mask, diffraction.shape)
    a, m = diffraction[valid], model[valid]
    mm = float(np.dot(m, m))
    s = float(np.dot(m, a) / mm) if mm > 0 else 0.0
    norm = float(np.linalg.norm(a))
    err = float(np.linalg.norm(s * m - a) / norm) if norm > 0 else math.nan
    return (err, s) if return_scale else err


# --- the whole scoring ------------------------------------------------------------------------


def score(
    recon: np.ndarray,
    weights: np.ndarray,
    ground_truth: np.ndarray | None,
    positions: np.ndarray,
    probe: np.ndarray,
    diffraction: np.ndarray,
    mask: np.ndarray | None = None,
    register: bool = False,
    remove_ramp: bool = False,
) -> Scores:
    """All metrics of one stitched reconstruction (module docstring, steps 1-6, and coverage).

    recon (H, W) complex and weights (H, W) from a stitcher; ground_truth (H, W) complex or None
    (then only the data-space error is computed, the rest is NaN); positions (n, 2) (y, x) of
    the test patterns on the canvas; probe (N, N); diffraction (n, N, N) measured amplitudes;
    mask (N, N) or (n, N, N) detector mask. `shift_y, shift_x` are the shift (pixels) applied
    to the reconstruction by registration; `ramp_y, ramp_x` the removed ramp (radians/pixel).
    """
    values = {key: math.nan for key in metric_registry.keys(metric_registry.SCORED)}
    values.update(shift_y=0.0, shift_x=0.0, ramp_y=0.0, ramp_x=0.0)
    recon = np.asarray(recon)
    err, s = data_space_error(recon, positions, probe, diffraction, mask, return_scale=True)
    values["data_error"], values["data_scale"] = err, s
    if ground_truth is None:
        return Scores(values=values)
    ground_truth = np.asarray(ground_truth)
    if ground_truth.shape != recon.shape or np.shape(weights) != recon.shape:
        raise ValueError(
            f"recon {recon.shape}, weights {np.shape(weights)} and ground truth {ground_truth.shape} must match"
        )
    box, keep = region(weights, positions)
    scores = Scores(values=values, region=box)
    square = _coverage(values, keep)
    if not keep.any():
        return scores
    r, g = _aligned(recon, ground_truth, box, keep, values, register, remove_ramp)
    if not values["area_too_small"]:
        _pixel_metrics(values, r, g, keep)
    if not values["frc_too_small"]:
        _frc_metrics(scores, r, g, keep, square)
    return scores


def _coverage(values: dict, keep: np.ndarray) -> tuple[slice, slice]:
    """Set the coverage keys and too-small flags from the covered mask; returns the FRC square."""
    y, x, side = largest_square(keep)
    n_scored = int(scored_mask(keep).sum())
    values["region_pixels"] = float(keep.sum())
    values["covered_fraction"] = float(keep.mean())
    values["scored_fraction"] = n_scored / keep.size
    values["frc_side"] = float(side)
    values["frc_too_small"] = float(side < FRC_MIN_SIDE)
    values["area_too_small"] = float(n_scored < MIN_SCORED_PIXELS)
    return slice(y, y + side), slice(x, x + side)


def _aligned(recon, ground_truth, box, keep, values, register, remove_ramp) -> tuple[np.ndarray, np.ndarray]:
    """(r, g) over the box: the reconstruction registered / de-ramped when asked (recorded in
    `values`) and scaled by the global complex scalar, 0 outside `keep`; the ground truth."""
    y0, y1, x0, x1 = box
    r_full = recon.astype(np.complex128)
    g = ground_truth[y0:y1, x0:x1].astype(np.complex128)
    if register:
        dy, dx = _iterative_registration(r_full, g, box, keep)
        values["shift_y"], values["shift_x"] = dy, dx
        r_full = fourier_shift(r_full, (dy, dx))
    r = r_full[y0:y1, x0:x1]
    if remove_ramp:
        gy, gx = phase_ramp(r, g, keep)
        yy, xx = np.indices(r.shape)
        r = r * np.exp(-1j * (gy * yy + gx * xx))
        values["ramp_y"], values["ramp_x"] = gy, gx
    c = global_scalar(r, g, keep)
    return np.where(keep, c * r, 0), g


def _pixel_metrics(values: dict, r: np.ndarray, g: np.ndarray, keep: np.ndarray) -> None:
    """MAE, RMSE, PSNR over the covered pixels and SSIM over the scored ones, amplitude and phase."""
    amp_r, amp_g = np.abs(r), np.abs(g)
    diff = (amp_r - amp_g)[keep]
    amp_range = float(np.ptp(amp_g[keep]))
    values["amp_mae"] = float(np.mean(np.abs(diff)))
    values["amp_rmse"] = float(np.sqrt(np.mean(diff**2)))
    values["amp_psnr"] = _psnr(amp_range, values["amp_rmse"])
    values["amp_ssim"] = ssim(amp_g, amp_r, keep, amp_range)

    phase_err = np.angle(r * np.conj(g))[keep]
    values["phase_mae"] = float(np.mean(np.abs(phase_err)))
    values["phase_rmse"] = float(np.sqrt(np.mean(phase_err**2)))
    ph_r, ph_g = _mean_phase_removed(r, keep), _mean_phase_removed(g, keep)
    ph_range = float(np.ptp(ph_g[keep]))
    values["phase_psnr"] = _psnr(ph_range, float(np.sqrt(np.mean((ph_r - ph_g)[keep] ** 2))))
    values["phase_ssim"] = ssim(ph_g, ph_r, keep, ph_range)


def _frc_metrics(scores: Scores, r: np.ndarray, g: np.ndarray, keep: np.ndarray, square) -> None:
    """Amplitude and phase FRC on the wholly covered `square`: resolutions and curves."""
    phases = _mean_phase_removed(r, keep), _mean_phase_removed(g, keep)
    for label, a, b in (("amp", np.abs(r), np.abs(g)), ("phase", *phases)):
        freq, curve = frc(a[square], b[square])
        px, cpp = frc_resolution(freq, curve)
        scores.values[f"frc_{label}_px"], scores.values[f"frc_{label}_cpp"] = px, cpp
        scores.frc[label] = {"frequency": freq.tolist(), "frc": [float(v) for v in curve]}
