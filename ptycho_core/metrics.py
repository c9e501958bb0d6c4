"""Alignment and metrics of a stitched reconstruction (DESIGN section 8).

`score(...)` runs, per reconstruction:

1. Region: the rectangle spanned by the scan centres, restricted to weight >= 10% of the max.
2. Alignment, in order: optional sub-pixel registration (`phase_cross_correlation` on the complex
   image; off by default; the shift applied is reported), optional phase-ramp removal, then one
   global complex scalar c = sum(conj(r) g) / sum(|r|^2), r <- c r.
3. Amplitude: MAE, RMSE, PSNR (peak = ground-truth amplitude range over the region), SSIM
   (data_range = that range, window 7).
4. Phase: error = wrapped angle(r conj(g)) -> MAE, RMSE (radians); SSIM, PSNR and FRC on the
   phase images after removing each image's amplitude-weighted mean phase, data_range = the
   ground truth's phase range.
5. FRC on a Hann-apodised square crop, 1-pixel rings: resolution at the first crossing of 0.5,
   in pixels and cycles/pixel; the curves are returned.
6. Data-space error (with or without ground truth): the stitched object cut at the test
   positions, forward model, one fitted real scale s, ||s A_hat - A|| / ||A|| over valid pixels.

Images are (H, W) on the ground truth's pixel grid; positions (n, 2) are (y, x) in those pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ptycho_core import physics

#: Region pixels must have at least this fraction of the maximum stitching weight.
REGION_WEIGHT_FRACTION = 0.1
SSIM_WINDOW = 7
FRC_THRESHOLD = 0.5

METRIC_KEYS = (
    "amp_ssim",
    "amp_psnr",
    "amp_mae",
    "amp_rmse",
    "phase_ssim",
    "phase_psnr",
    "phase_mae",
    "phase_rmse",
    "frc_amp_px",
    "frc_amp_cpp",
    "frc_phase_px",
    "frc_phase_cpp",
    "data_error",
    "data_scale",
    "shift_y",
    "shift_x",
    "ramp_y",
    "ramp_x",
    "region_pixels",
)


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
    from scipy import ndimage

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


def ssim(reference: np.ndarray, image: np.ndarray, mask: np.ndarray, data_range: float) -> float:
    """Mean SSIM (window 7) over the mask pixels at least 3 pixels from the crop's border."""
    from skimage.metrics import structural_similarity

    if not data_range > 0 or min(reference.shape) < SSIM_WINDOW:
        return math.nan
    _, smap = structural_similarity(
        reference.astype(np.float64), image.astype(np.float64), data_range=data_range, win_size=SSIM_WINDOW, full=True
    )
    pad = (SSIM_WINDOW - 1) // 2
    inner = np.zeros(mask.shape, dtype=bool)
    inner[pad : mask.shape[0] - pad, pad : mask.shape[1] - pad] = True
    keep = inner & mask
    return float(smap[keep].mean()) if keep.any() else math.nan


def frc(image: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fourier ring correlation of two real (S, S) images, mean-removed and Hann-apodised.

    Returns (frequency in cycles/pixel for rings k = 0..S//2, i.e. k / S; FRC per ring).
    """
    s = image.shape[0]
    taper = np.outer(np.hanning(s), np.hanning(s))
    fa = np.fft.fftshift(np.fft.fft2((image - image.mean()) * taper))
    fb = np.fft.fftshift(np.fft.fft2((reference - reference.mean()) * taper))
    ky, kx = np.indices((s, s)) - s // 2
    ring = np.rint(np.hypot(ky, kx)).astype(np.int64).ravel()
    n_rings = s // 2 + 1
    cross = fa * np.conj(fb)
    num_re = np.bincount(ring, cross.real.ravel(), minlength=n_rings)[:n_rings]
    num_im = np.bincount(ring, cross.imag.ravel(), minlength=n_rings)[:n_rings]
    pa = np.bincount(ring, (np.abs(fa) ** 2).ravel(), minlength=n_rings)[:n_rings]
    pb = np.bincount(ring, (np.abs(fb) ** 2).ravel(), minlength=n_rings)[:n_rings]
    den = np.sqrt(pa * pb)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = np.where(den > 0, np.hypot(num_re, num_im) / np.where(den > 0, den, 1), np.nan)
    return np.arange(n_rings) / s, curve


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


def _square(box_shape: tuple[int, int]) -> tuple[slice, slice]:
    h, w = box_shape
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return slice(y0, y0 + s), slice(x0, x0 + s)


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
    """All metrics of one stitched reconstruction (module docstring, steps 1-6).

    recon (H, W) complex and weights (H, W) from a stitcher; ground_truth (H, W) complex or None
    (then only the data-space error is computed, the rest is NaN); positions (n, 2) (y, x) of
    the test patterns on the canvas; probe (N, N); diffraction (n, N, N) measured amplitudes;
    mask (N, N) or (n, N, N) detector mask. `shift_y, shift_x` are the shift (pixels) applied
    to the reconstruction by registration; `ramp_y, ramp_x` the removed ramp (radians/pixel).
    """
    values = {key: math.nan for key in METRIC_KEYS}
    values["shift_y"] = values["shift_x"] = 0.0
    values["ramp_y"] = values["ramp_x"] = 0.0
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
    (y0, y1, x0, x1), keep = region(weights, positions)
    values["region_pixels"] = float(keep.sum())
    scores = Scores(values=values, region=(y0, y1, x0, x1))
    if not keep.any():
        return scores

    r_full = recon.astype(np.complex128)
    g = ground_truth[y0:y1, x0:x1].astype(np.complex128)
    if register:
        dy, dx = _iterative_registration(r_full, g, (y0, y1, x0, x1), keep)
        values["shift_y"], values["shift_x"] = dy, dx
        r_full = fourier_shift(r_full, (dy, dx))
    r = r_full[y0:y1, x0:x1]
    if remove_ramp:
        gy, gx = phase_ramp(r, g, keep)
        yy, xx = np.indices(r.shape)
        r = r * np.exp(-1j * (gy * yy + gx * xx))
        values["ramp_y"], values["ramp_x"] = gy, gx
    c = global_scalar(r, g, keep)
    r = np.where(keep, c * r, 0)

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
    ph_r = np.where(keep, _mean_phase_removed(r, keep), 0)
    ph_g = np.where(keep, _mean_phase_removed(g, keep), 0)
    ph_range = float(np.ptp(ph_g[keep]))
    values["phase_psnr"] = _psnr(ph_range, float(np.sqrt(np.mean((ph_r - ph_g)[keep] ** 2))))
    values["phase_ssim"] = ssim(ph_g, ph_r, keep, ph_range)

    sy, sx = _square(r.shape)
    for label, a, b in (("amp", amp_r, amp_g), ("phase", ph_r, ph_g)):
        freq, curve = frc(np.where(keep, a, 0)[sy, sx], np.where(keep, b, 0)[sy, sx])
        px, cpp = frc_resolution(freq, curve)
        values[f"frc_{label}_px"], values[f"frc_{label}_cpp"] = px, cpp
        scores.frc[label] = {"frequency": freq.tolist(), "frc": [float(v) for v in curve]}
    return scores
