"""Images as the figures show them: cropped to the scanned box and aligned to the ground truth
by one global complex scalar (the same pixels `ptycho_core.metrics` scores), with a scale bar."""

from __future__ import annotations

import cmath
import math

import numpy as np

from ptycho_core import metrics


def scan_box(positions, shape) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1), half-open: the rectangle spanned by the scan centres on an (H, W) canvas."""
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    h, w = shape
    y0, x0 = max(int(math.ceil(pos[:, 0].min())), 0), max(int(math.ceil(pos[:, 1].min())), 0)
    y1, x1 = min(int(math.floor(pos[:, 0].max())) + 1, h), min(int(math.floor(pos[:, 1].max())) + 1, w)
    if y1 <= y0 or x1 <= x0:
        return 0, h, 0, w
    return y0, y1, x0, x1


def nice_length(target: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above `target` (> 0): a scale bar length."""
    if not target > 0:
        raise ValueError("target must be positive")
    exponent = math.floor(math.log10(target))
    for mantissa in (5, 2, 1):
        value = mantissa * 10.0**exponent
        if value <= target * (1 + 1e-9):
            return value
    return 10.0**exponent


def length_label(metres: float) -> str:
    """'200 nm', '1.5 µm', '2 mm'..."""
    for unit, scale in (("m", 1.0), ("mm", 1e-3), ("µm", 1e-6), ("nm", 1e-9), ("pm", 1e-12)):
        if metres >= scale:
            return f"{metres / scale:g} {unit}"
    return f"{metres:g} m"


def display_images(truth, panels: dict) -> tuple[list, tuple]:
    """[(title, amplitude, phase)] cropped to the scanned box and aligned to the ground truth by
    one global complex scalar (over weight >= 10%); without ground truth, each image's
    amplitude-weighted mean phase is removed.

    truth: the test `Dataset` (its `object` and `positions`) or None; panels: {title:
    `Reconstruction`} with `object`, `weights` and `positions` on the truth's canvas."""
    if truth is not None and truth.object is None:
        truth = None
    first = truth if truth is not None else next(iter(panels.values()), None)
    if first is None:
        return [], (0, 0, 0, 0)
    shape = np.shape(first.object)
    y0, y1, x0, x1 = scan_box(first.positions, shape)
    images = []
    gt = None
    if truth is not None:
        gt = np.asarray(truth.object)[y0:y1, x0:x1].astype(np.complex128)
        images.append(("ground truth", np.abs(gt), np.angle(gt)))
    for title, panel in panels.items():
        obj = np.asarray(panel.object)
        if obj.shape != shape:
            continue
        r = obj[y0:y1, x0:x1].astype(np.complex128)
        keep = metrics.region(panel.weights, first.positions)[1]  # the pixels metrics scores
        if gt is not None:
            c = metrics.global_scalar(r, gt, keep)
            r = c * r if cmath.isfinite(c) else r
        else:
            r = r * np.exp(-1j * np.angle(np.sum(r[keep])))
        r = np.where(keep, r, np.nan)
        images.append((title, np.abs(r), np.angle(r)))
    return images, (y0, y1, x0, x1)


def limits(arrays: list) -> tuple[float, float]:

    values = np.concatenate([np.asarray(a)[np.isfinite(a)].ravel() for a in arrays]) if arrays else np.zeros(1)
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, [1, 99])
    if not hi > lo:
        hi = lo + 1e-6
    return float(lo), float(hi)
