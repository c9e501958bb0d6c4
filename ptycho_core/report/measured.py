"""Figures of a comparison without ground truth (a measured scan, issue 21): comparison.png and
errors.png as a ptychographer reads them.

- The reference row (the iterative row the others are read against: `harness.probe`'s source
  row, else the first iterative row, else the first row) is the first column.
- The whole reconstructed region is shown: the box of canvas pixels whose illumination weight is
  at least `COVERED` of its maximum (not only the box of the scan centres).
- Each image is aligned to the reference by one global complex scalar over the pixels both cover
  (the reference itself by removing its mean phase) and drawn on its own robust scale: the 1st to
  99th percentile of its covered pixels, with its own colour bar. Rows may differ by orders of
  magnitude in amplitude (an unscaled probe, a network's output range); a shared scale would show
  some black and others white.
- errors.png: each row minus the reference, labelled so ("minus reference lsqml"), on symmetric
  scales shared by the rows.
"""

from __future__ import annotations

import cmath
from pathlib import Path

import numpy as np

from ptycho_core import metrics
from ptycho_core.report.display import limits
from ptycho_core.report.figures import _image_rows, _nothing_to_show, _save_figure

#: A pixel belongs to the reconstructed region when its weight is at least this share of the maximum.
COVERED = 0.1


def pick_reference(panels: dict, reference: str | None, kinds: dict | None = None) -> str | None:
    """The label of the reference panel: `reference` when present, else the first iterative one
    (`kinds`: label -> "learned" / "iterative"), else the first."""
    if reference in panels:
        return reference
    for label in panels:
        if (kinds or {}).get(label) == "iterative":
            return label
    return next(iter(panels), None)


def _box(weights):
    w = np.asarray(weights, dtype=np.float64)
    covered = w >= COVERED * w.max() if w.max() > 0 else np.ones(w.shape, bool)
    ys, xs = np.nonzero(covered)
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def images(panels: dict, reference: str | None, kinds: dict | None = None) -> list:
    """[(title, amplitude, phase)] with the reference first, aligned to it, NaN outside the region."""
    ref_label = pick_reference(panels, reference, kinds)
    if ref_label is None:
        return []
    ref = panels[ref_label]
    shape = np.shape(ref.object)
    y0, y1, x0, x1 = _box(ref.weights)
    ref_w = np.asarray(ref.weights, dtype=np.float64)[y0:y1, x0:x1]
    ref_obj = np.asarray(ref.object)[y0:y1, x0:x1].astype(np.complex128)
    ref_keep = ref_w >= COVERED * ref_w.max()
    ref_obj = ref_obj * np.exp(-1j * np.angle(np.sum(ref_obj[ref_keep])))
    out = [(f"reference: {ref_label}", *_parts(ref_obj, ref_keep))]
    for label, panel in panels.items():
        if label == ref_label or np.shape(panel.object) != shape:
            continue
        w = np.asarray(panel.weights, dtype=np.float64)[y0:y1, x0:x1]
        keep = ref_keep & (w >= COVERED * w.max()) if w.max() > 0 else ref_keep
        r = np.asarray(panel.object)[y0:y1, x0:x1].astype(np.complex128)
        c = metrics.global_scalar(r, ref_obj, keep) if keep.any() else complex("nan")
        r = c * r if cmath.isfinite(c) and c != 0 else r
        out.append((label, *_parts(r, keep)))
    return out


def _parts(obj, keep):
    shown = np.where(keep, obj, np.nan)
    return np.abs(shown), np.angle(shown)


def _robust(image) -> tuple[float, float]:
    values = np.asarray(image)[np.isfinite(image)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, [1, 99])
    return float(lo), float(hi if hi > lo else lo + 1e-6)


def comparison_figure(panels: dict, path, reference: str | None = None, kinds: dict | None = None) -> Path:
    """comparison.png without ground truth (see the module docstring)."""
    from matplotlib.figure import Figure  # lazy: matplotlib's import time, only figures need it

    shown = images(panels, reference, kinds)
    ncol = max(1, len(shown))
    fig = Figure(figsize=(2.9 * ncol + 0.4, 5.4))
    axes = fig.subplots(2, ncol, squeeze=False)
    if not shown:
        return _nothing_to_show(fig, axes, path)
    for j, (title, amp, phase) in enumerate(shown):
        for row, (image, cmap) in enumerate(((amp, "gray"), (phase, "viridis"))):
            ax = axes[row][j]
            lo, hi = _robust(image)
            drawn = ax.imshow(image, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(drawn, ax=ax, fraction=0.046, pad=0.02)
        axes[0][j].set_title(title, fontsize=10)
    axes[0][0].set_ylabel("amplitude")
    axes[1][0].set_ylabel("phase (rad)")
    fig.suptitle(
        "no ground truth: each image on its own 1-99 percentile scale, aligned to the reference by one "
        "global complex scalar",
        fontsize=9,
    )
    return _save_figure(fig, Path(path))


def error_figure(panels: dict, path, reference: str | None = None, kinds: dict | None = None) -> Path:
    """errors.png without ground truth: each row minus the reference (aligned as in comparison.png)."""
    from matplotlib.figure import Figure  # lazy: matplotlib's import time, only figures need it

    shown = images(panels, reference, kinds)
    if len(shown) < 2:
        fig = Figure(figsize=(6, 2))
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no error maps: no second reconstruction to compare with the reference", ha="center")
        return _save_figure(fig, Path(path))
    ref_title, ref_amp, ref_phase = shown[0]
    name = ref_title.removeprefix("reference: ")
    errors = [
        (f"{t} minus reference {name}", a - ref_amp, np.angle(np.exp(1j * (p - ref_phase)))) for t, a, p in shown[1:]
    ]
    amp_top = max(limits([np.abs(e[1]) for e in errors])[1], 1e-6)
    phase_top = max(limits([np.abs(e[2]) for e in errors])[1], 1e-6)
    fig = Figure(figsize=(2.6 * len(errors) + 0.8, 5.0))
    axes = fig.subplots(2, len(errors), squeeze=False)
    scales = (
        ("RdBu_r", -amp_top, amp_top, "amplitude - reference"),
        ("RdBu_r", -phase_top, phase_top, "phase - reference (rad)"),
    )
    _image_rows(fig, axes, errors, scales)
    fig.suptitle(f"no ground truth: each reconstruction minus the reference ({name}), not errors", fontsize=10)
    return _save_figure(fig, Path(path))
