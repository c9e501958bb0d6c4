"""The comparison's figures, each drawn on a `matplotlib.figure.Figure` (no pyplot, no global
backend state) and saved atomically as PNG:

    comparison.png   ground truth and every model, amplitude and phase, shared colour scales per row
                     type, scale bar when metadata pixel_size_m is known
    frc.png          Fourier ring correlation curves against the ground truth (amplitude, phase)
    errors.png       per model, amplitude and wrapped phase error maps against the ground truth
    training.png     training and validation loss per epoch, one panel per run (own y scale)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ptycho_core import rundir
from ptycho_core.metric_registry import finite
from ptycho_core.report.display import display_images, length_label, limits, nice_length


def _save_figure(fig, path: Path) -> Path:
    with rundir.atomic(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return Path(path)


def _image_rows(fig, axes, images: list, scales) -> None:
    """Draw [(title, amplitude-like, phase-like)] as two rows of `axes` (2, n), each row on one colour
    scale `scales[row] = (cmap, vmin, vmax, label)` with its colour bar."""
    for row, (cmap, vmin, vmax, label) in enumerate(scales):
        for j, image in enumerate(images):
            drawn = axes[row][j].imshow(image[1 + row], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            axes[row][j].set_xticks([])
            axes[row][j].set_yticks([])
        axes[row][0].set_ylabel(label)
        fig.colorbar(drawn, ax=list(axes[row]), shrink=0.8, pad=0.02)
    for j, image in enumerate(images):
        axes[0][j].set_title(image[0], fontsize=10)


def comparison_figure(truth, panels: dict, path, pixel_size_m: float | None = None) -> Path:
    """comparison.png: columns ground truth (when known) and every model; rows amplitude and
    phase, each row on one shared colour scale (from the ground truth when known).
    truth: a `Dataset` or None; panels: {label: `Reconstruction`} (`display.display_images`)."""
    from matplotlib.figure import Figure  # lazy: matplotlib's import time, only figures need it
    from matplotlib.patches import Rectangle

    images, (y0, y1, x0, x1) = display_images(truth, panels)
    ncol = max(1, len(images))
    fig = Figure(figsize=(2.4 * ncol + 0.8, 5.0))
    axes = fig.subplots(2, ncol, squeeze=False)
    if not images:
        axes[0][0].text(0.5, 0.5, "no successful reconstruction", ha="center", va="center")
        for ax in axes.ravel():
            ax.set_axis_off()
        return _save_figure(fig, Path(path))
    reference = [images[0]] if truth is not None and truth.object is not None else images
    amp_lim = limits([im[1] for im in reference])
    phase_lim = limits([im[2] for im in reference])
    scales = (("gray", *amp_lim, "amplitude"), ("viridis", *phase_lim, "phase (rad)"))
    _image_rows(fig, axes, images, scales)
    if pixel_size_m and pixel_size_m > 0:
        width_px = x1 - x0
        bar_m = nice_length(width_px * pixel_size_m / 4)
        bar_px = bar_m / pixel_size_m
        h = y1 - y0
        ax = axes[0][0]
        ax.add_patch(
            Rectangle((0.05 * width_px, 0.9 * h), bar_px, max(1.0, 0.025 * h), color="white", ec="black", lw=0.5)
        )
        ax.text(
            0.05 * width_px,
            0.86 * h,
            length_label(bar_m),
            color="white",
            fontsize=8,
            va="bottom",
            bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "lw": 0},
        )
    fig.suptitle("test object: amplitude and phase (aligned by one global complex scalar)", fontsize=10)
    return _save_figure(fig, Path(path))


def frc_figure(curves: dict, path) -> Path:
    """frc.png: FRC against the ground truth, amplitude and phase panels, 0.5 threshold marked."""
    from matplotlib.figure import Figure  # lazy: matplotlib's import time, only figures need it

    fig = Figure(figsize=(9, 3.6))
    axes = fig.subplots(1, 2)
    if not curves:
        for ax in axes:
            ax.set_axis_off()
        axes[0].text(
            0.5,
            0.5,
            "no FRC: no ground truth, or no covered square large enough (too small)",
            ha="left",
            va="center",
            transform=axes[0].transAxes,
        )
        return _save_figure(fig, Path(path))
    for ax, part in zip(axes, ("amp", "phase")):
        for label, frc in curves.items():
            curve = (frc or {}).get(part)
            if curve:
                ax.plot(curve["frequency"], curve["frc"], label=label)
        ax.axhline(0.5, color="gray", ls="--", lw=1)
        ax.set_xlabel("spatial frequency (cycles/pixel)")
        ax.set_ylabel("FRC")
        ax.set_title("amplitude" if part == "amp" else "phase")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return _save_figure(fig, Path(path))


def error_figure(truth, panels: dict, path) -> Path:
    """errors.png: per model, the amplitude error |r| - |g| and the wrapped phase error
    angle(r conj g) after the same alignment as comparison.png, on shared symmetric colour scales;
    a model that learned the twin image or blurred the lines shows it here at a glance."""
    from matplotlib.figure import Figure  # lazy: matplotlib's import time, only figures need it

    images, _ = display_images(truth, panels)
    if truth is None or truth.object is None or len(images) < 2:
        fig = Figure(figsize=(6, 2))
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no error maps: no ground truth or no successful reconstruction", ha="center", va="center")
        return _save_figure(fig, Path(path))
    _, gt_amp, gt_phase = images[0]
    errors = [(title, amp - gt_amp, np.angle(np.exp(1j * (phase - gt_phase)))) for title, amp, phase in images[1:]]
    amp_top = max(limits([np.abs(e[1]) for e in errors])[1], 1e-6)
    phase_top = max(limits([np.abs(e[2]) for e in errors])[1], 1e-6)
    fig = Figure(figsize=(2.4 * len(errors) + 0.8, 5.0))
    axes = fig.subplots(2, len(errors), squeeze=False)
    scales = (("RdBu_r", -amp_top, amp_top, "amplitude error"), ("RdBu_r", -phase_top, phase_top, "phase error (rad)"))
    _image_rows(fig, axes, errors, scales)
    fig.suptitle("reconstruction minus ground truth (aligned as in comparison.png)", fontsize=10)
    return _save_figure(fig, Path(path))


def training_figure(histories: dict, path) -> Path:
    """training.png: one panel per run (its own y scale, since generators' losses differ by orders
    of magnitude and sign), loss (solid) and validation loss (dashed) per epoch."""
    from matplotlib.figure import Figure  # lazy: matplotlib's import time, only figures need it
    from matplotlib.ticker import MaxNLocator

    names = list(histories)
    ncol = min(3, max(1, len(names)))
    nrow = max(1, math.ceil(len(names) / ncol))
    fig = Figure(figsize=(3.6 * ncol, 2.8 * nrow + 0.4), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax in axes[len(names) :]:
        ax.set_axis_off()
    if not names:
        axes[0].text(0.5, 0.5, "no training history", ha="center", va="center", transform=axes[0].transAxes)
    for i, (ax, name) in enumerate(zip(axes, names)):
        hist = histories[name] or {}
        color = f"C{i % 10}"
        loss = [v if finite(v) else math.nan for v in hist.get("loss", [])]
        val = [v if finite(v) else math.nan for v in hist.get("val_loss", [])]
        values = [v for v in loss + val if finite(v)]
        if loss:
            ax.plot(range(1, len(loss) + 1), loss, color=color, label="train")
        if val and any(finite(v) for v in val):
            ax.plot(range(1, len(val) + 1), val, color=color, ls="--", label="validation")
        if values and min(values) > 0 and max(values) / min(values) > 20:
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if names:
        axes[0].legend(fontsize=7)
    fig.suptitle("training loss per run (solid: train, dashed: validation; each its own scale)", fontsize=10)
    return _save_figure(fig, Path(path))
