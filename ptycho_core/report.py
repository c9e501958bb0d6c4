"""Tables, figures and the HTML report of a comparison (DESIGN section 9, outputs).

Written into the comparison folder, each file atomically (temporary file, then rename):
    metrics.csv      one row per generator (with --seeds K: <metric> is the mean, <metric>_std the std)
    metrics.json     {"columns", "rows", "runs", "skipped", "provenance"}
    comparison.png   ground truth and every model, amplitude and phase, shared colour scales per row
                     type, scale bar when metadata pixel_size_m is known
    frc.png          Fourier ring correlation curves against the ground truth (amplitude, phase)
    errors.png       per model, amplitude and wrapped phase error maps against the ground truth
    training.png     training and validation loss per epoch, one panel per run (own y scale)
    report.html      self-contained: the table, the figures (base64 PNG), skipped runs, provenance

Figures are drawn on `matplotlib.figure.Figure` objects (no pyplot, no global backend state).
"""

from __future__ import annotations

import base64
import cmath
import csv
import html
import math
from dataclasses import dataclass
from pathlib import Path

from ptycho_core import rundir


@dataclass(frozen=True)
class Column:
    """A table column: `better` is "max", "min" or "" (no best value marked)."""

    key: str
    label: str
    better: str = ""
    fmt: str = "{:.3g}"
    terminal: bool = True
    help: str = ""


#: Table columns in order (DESIGN section 8): amplitude and phase metrics, data-space error, cost.
COLUMNS = (
    Column("amp_ssim", "amp SSIM", "max", "{:.3f}", help="amplitude SSIM (window 7) over the scored region"),
    Column("amp_psnr", "amp PSNR", "max", "{:.2f}", False, "amplitude PSNR in dB, peak = ground-truth range"),
    Column("amp_mae", "amp MAE", "min", "{:.4f}", False, "amplitude mean absolute error"),
    Column("amp_rmse", "amp RMSE", "min", "{:.4f}", False, "amplitude root mean square error"),
    Column("phase_ssim", "phase SSIM", "max", "{:.3f}", help="phase SSIM after removing the mean phase"),
    Column("phase_psnr", "phase PSNR", "max", "{:.2f}", False, "phase PSNR in dB"),
    Column("phase_mae", "phase MAE", "min", "{:.4f}", False, "mean absolute wrapped phase error, radians"),
    Column("phase_rmse", "phase RMSE", "min", "{:.4f}", False, "rms wrapped phase error, radians"),
    Column("frc_amp_px", "FRC amp px", "min", "{:.2f}", help="amplitude FRC resolution at 0.5, pixels"),
    Column("frc_phase_px", "FRC phase px", "min", "{:.2f}", False, "phase FRC resolution at 0.5, pixels"),
    Column("covered_fraction", "covered", "", "{:.0%}", help="share of the scan rectangle covered (weight >= 10%)"),
    Column(
        "twin_share",
        "twin",
        "min",
        "{:.2f}",
        help="share of test patches nearer the twin image of their true patch than the patch itself "
        "(0: faithful; about 0.5: undecided between object and twin)",
    ),
    Column("data_error", "data err", "min", "{:.4f}", help="||s A_hat - A|| / ||A|| at the test positions"),
    Column("parameters", "params", "", "{:,.0f}", help="trainable parameters"),
    Column("train_seconds", "train s", "min", "{:.1f}", help="training wall time, seconds (none: iterative)"),
    Column(
        "reconstruct_seconds",
        "recon s",
        "min",
        "{:.2f}",
        help="wall time reconstructing the test patterns: timed prediction, or the iterative engine's run",
    ),
    Column(
        "inference_patterns_per_s",
        "pat/s",
        "max",
        "{:,.0f}",
        help="test patterns reconstructed per second (learned: after a warm-up call, the same batch for every "
        "row; iterative: the whole reconstruction)",
    ),
    Column("peak_rss_mib", "peak MiB", "min", "{:,.0f}", help="the child's peak resident memory"),
    Column("peak_gpu_mib", "peak GPU MiB", "min", "{:,.0f}", False, "torch.cuda.max_memory_allocated"),
)

#: Further per-run numbers kept in the CSV/JSON (not in the terminal table).
EXTRA_KEYS = ("frc_amp_cpp", "frc_phase_cpp", "data_scale", "shift_y", "shift_x", "epochs_run", "final_loss")
#: Coverage of the scored area (ptycho_core.metrics): SSIM-scored share, FRC square side, flags.
COVERAGE_KEYS = ("scored_fraction", "frc_side", "frc_too_small", "area_too_small")
#: Metrics left without a number, per flag, when the scored area is too small to mean anything.
TOO_SMALL = {
    "frc_too_small": ("frc_amp_px", "frc_amp_cpp", "frc_phase_px", "frc_phase_cpp"),
    "area_too_small": tuple(f"{p}_{m}" for p in ("amp", "phase") for m in ("ssim", "psnr", "mae", "rmse")),
}
TOO_SMALL_TEXT = "too small"


# --- rows ---------------------------------------------------------------------------------------


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def too_small(row: dict, key: str) -> bool:
    """True when `key` has no number because the row's scored area was too small (its flag set)."""
    if _finite(row.get(key)):
        return False
    return any(key in keys and _finite(row.get(flag)) and row[flag] >= 0.5 for flag, keys in TOO_SMALL.items())


def coverage_note(rows: list[dict]) -> str:
    """One sentence: how much of the scan rectangle was covered and scored ('' when unknown)."""
    row = next((r for r in rows if _finite(r.get("covered_fraction"))), None)
    if row is None:
        return ""
    text = f"Covered: {row['covered_fraction']:.0%} of the scan rectangle (stitching weight >= 10% of the max)"
    if _finite(row.get("scored_fraction")):
        text += f"; SSIM scored on {row['scored_fraction']:.0%} (pixels whose whole 7x7 window is covered)"
    if _finite(row.get("frc_side")):
        text += f"; FRC on a {row['frc_side']:.0f} px covered square"
    names = {"frc_too_small": "FRC", "area_too_small": "SSIM, PSNR, MAE"}
    small = [names[flag] for flag in TOO_SMALL if _finite(row.get(flag)) and row[flag] >= 0.5]
    return text + (f"; {TOO_SMALL_TEXT} to score: {', '.join(small)}." if small else ".")


def summarise(runs: list[dict], seeds: int = 1) -> list[dict]:
    """One row per generator from per-(generator, seed) runs.

    With seeds == 1 the row holds the run's numbers; otherwise `<key>` is the mean over the
    successful seeds and `<key>_std` the sample standard deviation. `status` is "ok" when every
    seed succeeded, else "failed: <reason>" (with "k/K" when some seeds succeeded).
    """
    order: list[str] = []
    groups: dict[str, list[dict]] = {}
    for r in runs:
        if r["generator"] not in groups:
            order.append(r["generator"])
        groups.setdefault(r["generator"], []).append(r)
    keys = [c.key for c in COLUMNS] + list(EXTRA_KEYS) + list(COVERAGE_KEYS)
    rows = []
    for label in order:
        group = groups[label]
        ok = [r for r in group if r["status"] == "ok"]
        failed = [r for r in group if r["status"] != "ok"]
        row = {
            "generator": label,
            "framework": group[0].get("framework"),
            "kind": group[0].get("kind", "learned"),
            "plugin": group[0].get("plugin"),
            "version": group[0].get("version"),
            "runs": len(group),
            "ok_runs": len(ok),
            "reused": all(r.get("reused") for r in group),
        }
        if not failed:
            row["status"] = "ok"
        elif not ok:
            row["status"] = f"failed: {failed[0].get('reason', '')}"
        else:
            row["status"] = f"failed {len(failed)}/{len(group)}: {failed[0].get('reason', '')}"
        for key in keys:
            values = [float(r[key]) for r in ok if _finite(r.get(key))]
            if seeds == 1 or len(group) == 1:
                raw = [r[key] for r in ok if _finite(r.get(key))]
                row[key] = raw[0] if raw else None
            else:
                row[key] = sum(values) / len(values) if values else None
                if len(values) > 1:
                    mean = row[key]
                    row[f"{key}_std"] = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
                else:
                    row[f"{key}_std"] = 0.0 if values else None
        rows.append(row)
    return rows


def best_values(rows: list[dict]) -> dict[str, float]:
    """Per column with a direction, the best value among successful rows."""
    best = {}
    for col in COLUMNS:
        values = [r[col.key] for r in rows if r["status"] == "ok" and _finite(r.get(col.key))]
        if values and col.better:
            best[col.key] = max(values) if col.better == "max" else min(values)
    return best


def format_value(row: dict, col: Column) -> str:
    """A cell: the value (or mean ± std when the row has a std), '-' when missing."""
    value = row.get(col.key)
    if not _finite(value):
        return TOO_SMALL_TEXT if too_small(row, col.key) else "-"
    text = col.fmt.format(value)
    std = row.get(f"{col.key}_std")
    if _finite(std):
        text += " ± " + col.fmt.format(std)
    return text


# --- files --------------------------------------------------------------------------------------


def csv_columns(rows: list[dict], seeds: int = 1) -> list[str]:
    keys = ["generator", "status"]
    for key in [c.key for c in COLUMNS] + list(EXTRA_KEYS) + list(COVERAGE_KEYS):
        keys.append(key)
        if seeds > 1:
            keys.append(f"{key}_std")
    return keys + ["framework", "kind", "plugin", "version", "runs", "ok_runs", "reused"]


def write_csv(rows: list[dict], path, seeds: int = 1) -> Path:
    """metrics.csv: one row per generator; empty cells for missing values."""
    path = Path(path)
    keys = csv_columns(rows, seeds)
    with rundir.atomic(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_cell(row, k) for k in keys})
    return path


def method_note() -> str:
    """How the scored area and the FRC are chosen, with the thresholds (ptycho_core.metrics)."""
    from ptycho_core import metrics

    return (
        "Only covered pixels (stitching weight >= 10% of the max) are scored: MAE, RMSE and PSNR over "
        "them, SSIM over the pixels whose whole 7x7 window is covered. The FRC is computed on the largest "
        "square lying wholly inside the covered area, each image mean-removed and Hann-apodised inside it; "
        f"the resolution is the first crossing of {metrics.FRC_THRESHOLD:g}. '{TOO_SMALL_TEXT}': the FRC "
        f"square is under {metrics.FRC_MIN_SIDE} px, or fewer than {metrics.MIN_SCORED_PIXELS} pixels are "
        "scored; the metric is then not given a number."
    )


def _csv_cell(row: dict, key: str):
    if row.get(key) is None:
        return TOO_SMALL_TEXT if too_small(row, key) else ""
    return row.get(key)


def write_json(payload: dict, path) -> Path:
    """Strict JSON (NaN and inf become null), atomically (`rundir.write_json`)."""
    return rundir.write_json(path, payload)


def _save_figure(fig, path: Path) -> Path:
    with rundir.atomic(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return path


# --- figures ------------------------------------------------------------------------------------


def scan_box(positions, shape) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1), half-open: the rectangle spanned by the scan centres on an (H, W) canvas."""
    import numpy as np

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


def _display_images(truth, panels: dict) -> tuple[list, tuple]:
    """[(title, amplitude, phase)] cropped to the scanned box and aligned to the ground truth by
    one global complex scalar (over weight >= 10%); without ground truth, each image's
    amplitude-weighted mean phase is removed."""
    import numpy as np

    from ptycho_core import metrics

    first = truth if truth is not None else next(iter(panels.values()), None)
    if first is None:
        return [], (0, 0, 0, 0)
    shape = np.shape(first["object"])
    y0, y1, x0, x1 = scan_box(first["positions"], shape)
    images = []
    gt = None
    if truth is not None:
        gt = np.asarray(truth["object"])[y0:y1, x0:x1].astype(np.complex128)
        images.append(("ground truth", np.abs(gt), np.angle(gt)))
    for title, panel in panels.items():
        obj = np.asarray(panel["object"])
        if obj.shape != shape:
            continue
        r = obj[y0:y1, x0:x1].astype(np.complex128)
        keep = metrics.region(panel["weights"], first["positions"])[1]  # the pixels metrics scores
        if gt is not None:
            c = metrics.global_scalar(r, gt, keep)
            r = c * r if cmath.isfinite(c) else r
        else:
            r = r * np.exp(-1j * np.angle(np.sum(r[keep])))
        r = np.where(keep, r, np.nan)
        images.append((title, np.abs(r), np.angle(r)))
    return images, (y0, y1, x0, x1)


def _limits(arrays: list) -> tuple[float, float]:
    import numpy as np

    values = np.concatenate([np.asarray(a)[np.isfinite(a)].ravel() for a in arrays]) if arrays else np.zeros(1)
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, [1, 99])
    if not hi > lo:
        hi = lo + 1e-6
    return float(lo), float(hi)


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
    phase, each row on one shared colour scale (from the ground truth when known)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    images, (y0, y1, x0, x1) = _display_images(truth, panels)
    ncol = max(1, len(images))
    fig = Figure(figsize=(2.4 * ncol + 0.8, 5.0))
    axes = fig.subplots(2, ncol, squeeze=False)
    if not images:
        axes[0][0].text(0.5, 0.5, "no successful reconstruction", ha="center", va="center")
        for ax in axes.ravel():
            ax.set_axis_off()
        return _save_figure(fig, Path(path))
    reference = [images[0]] if truth is not None else images
    amp_lim = _limits([im[1] for im in reference])
    phase_lim = _limits([im[2] for im in reference])
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
    from matplotlib.figure import Figure

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
    import numpy as np
    from matplotlib.figure import Figure

    images, _ = _display_images(truth, panels)
    if truth is None or len(images) < 2:
        fig = Figure(figsize=(6, 2))
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no error maps: no ground truth or no successful reconstruction", ha="center", va="center")
        return _save_figure(fig, Path(path))
    _, gt_amp, gt_phase = images[0]
    errors = [(title, amp - gt_amp, np.angle(np.exp(1j * (phase - gt_phase)))) for title, amp, phase in images[1:]]
    amp_top = max(_limits([np.abs(e[1]) for e in errors])[1], 1e-6)
    phase_top = max(_limits([np.abs(e[2]) for e in errors])[1], 1e-6)
    fig = Figure(figsize=(2.4 * len(errors) + 0.8, 5.0))
    axes = fig.subplots(2, len(errors), squeeze=False)
    scales = (("RdBu_r", -amp_top, amp_top, "amplitude error"), ("RdBu_r", -phase_top, phase_top, "phase error (rad)"))
    _image_rows(fig, axes, errors, scales)
    fig.suptitle("reconstruction minus ground truth (aligned as in comparison.png)", fontsize=10)
    return _save_figure(fig, Path(path))


def training_figure(histories: dict, path) -> Path:
    """training.png: one panel per run (its own y scale, since generators' losses differ by orders
    of magnitude and sign), loss (solid) and validation loss (dashed) per epoch."""
    from matplotlib.figure import Figure
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
        loss = [v if _finite(v) else math.nan for v in hist.get("loss", [])]
        val = [v if _finite(v) else math.nan for v in hist.get("val_loss", [])]
        values = [v for v in loss + val if _finite(v)]
        if loss:
            ax.plot(range(1, len(loss) + 1), loss, color=color, label="train")
        if val and any(_finite(v) for v in val):
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


# --- HTML ---------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; font-size: 0.9em; }
div.scroll { overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td.name, th.name, td.status { text-align: left; }
td.best { font-weight: bold; }
td.failed { color: #b00; }
img { max-width: 100%; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
"""


def _img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def html_table(rows: list[dict]) -> str:
    """The metrics table as an HTML <table> (best values bold, failures in red)."""
    best = best_values(rows)
    head = "".join(f'<th title="{html.escape(c.help)}">{html.escape(c.label)}</th>' for c in COLUMNS)
    out = [f'<div class="scroll"><table><tr><th class="name">generator</th>{head}<th class="name">status</th></tr>']
    for row in rows:
        cells = [f'<td class="name">{html.escape(str(row["generator"]))}</td>']
        for col in COLUMNS:
            value = row.get(col.key)
            is_best = col.key in best and _finite(value) and value == best[col.key] and len(rows) > 1
            cells.append(f"<td{' class=best' if is_best else ''}>{html.escape(format_value(row, col))}</td>")
        ok = row["status"] == "ok"
        cells.append(f'<td class="status{"" if ok else " failed"}">{html.escape(row["status"])}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></div>")  # a table wider than the window scrolls inside its box
    return "\n".join(out)


def column_legend(batch: int | None = None) -> str:
    """Every column's label and meaning, as the table labels it (HTML list)."""
    items = []
    for col in COLUMNS:
        text = col.help
        if col.key == "inference_patterns_per_s" and batch:
            text += f" ({batch} groups per predict call)"
        items.append(f"<li><b>{html.escape(col.label)}</b>: {html.escape(text)}</li>")
    return '<ul class="legend">' + "".join(items) + "</ul>"


def write_html(path, *, rows, runs, skipped, provenance, figures: dict, seeds: int = 1) -> Path:
    """report.html: self-contained (figures embedded as base64 PNG; no external resources)."""
    path = Path(path)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>ptycho compare report</title>',
        f"<style>{_STYLE}</style></head><body>",
        "<h1>ptycho compare</h1>",
        f"<p>{html.escape(str(provenance.get('data', {}).get('description', '')))}</p>",
        "<h2>Metrics</h2>",
    ]
    if seeds > 1:
        parts.append(f"<p>mean ± sample standard deviation over {seeds} seeds</p>")
    parts.append(html_table(rows))
    parts.append("<p>Amplitude and phase metrics against the ground truth after one global complex scalar.</p>")
    parts.append(column_legend(provenance.get("inference_batch_groups")))
    parts.append(f"<p>{html.escape(method_note())} {html.escape(coverage_note(rows))}</p>")
    failed = [r for r in runs if r.get("status") != "ok"]
    if failed:
        parts.append("<h2>Failed runs</h2><ul>")
        for r in failed:
            log = f"{r.get('run_dir', '')}/run.log"
            parts.append(
                f"<li><b>{html.escape(str(r.get('run')))}</b>: {html.escape(str(r.get('reason')))} "
                f'(log: <a href="{html.escape(log)}">{html.escape(log)}</a>)</li>'
            )
        parts.append("</ul>")
    if skipped:
        parts.append("<h2>Skipped generators</h2><ul>")
        for s in skipped:
            parts.append(f"<li><b>{html.escape(str(s['generator']))}</b>: {html.escape(str(s['reason']))}</li>")
        parts.append("</ul>")
    titles = {
        "comparison": "Reconstructions",
        "errors": "Error maps",
        "frc": "Fourier ring correlation",
        "training": "Training",
    }
    for key, fig_path in figures.items():
        parts.append(f"<h2>{html.escape(titles.get(key, key))}</h2>")
        parts.append(_img_tag(fig_path, key))
    parts.append("<h2>Provenance</h2>")
    parts.append(f"<pre>{html.escape(rundir.dumps(provenance))}</pre>")
    parts.append("</body></html>")
    return rundir.write_text(path, "\n".join(parts) + "\n")


def write_report(
    out_dir,
    *,
    rows: list[dict],
    runs: list[dict],
    skipped: list[dict],
    provenance: dict,
    truth: dict | None,
    panels: dict,
    frc: dict,
    histories: dict,
    pixel_size_m: float | None = None,
    seeds: int = 1,
) -> Path:
    """Write metrics.csv, metrics.json, the four figures and report.html; returns report.html.

    truth: {"object": (H, W) complex, "positions": (n, 2)} or None; panels: {label: {"object",
    "weights", "positions"}} (stitched, same canvas as the truth); frc: {label: {"amp"|"phase":
    {"frequency", "frc"}}}; histories: {run name: History dict}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out_dir / "metrics.csv", seeds)
    columns = [{"key": c.key, "label": c.label, "better": c.better, "help": c.help} for c in COLUMNS]
    write_json(
        {"columns": columns, "rows": rows, "runs": runs, "skipped": skipped, "provenance": provenance},
        out_dir / "metrics.json",
    )
    figures = {
        "comparison": comparison_figure(truth, panels, out_dir / "comparison.png", pixel_size_m),
        "errors": error_figure(truth, panels, out_dir / "errors.png"),
        "frc": frc_figure(frc, out_dir / "frc.png"),
        "training": training_figure(histories, out_dir / "training.png"),
    }
    return write_html(
        out_dir / "report.html",
        rows=rows,
        runs=runs,
        skipped=skipped,
        provenance=provenance,
        figures=figures,
        seeds=seeds,
    )
