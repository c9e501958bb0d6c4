"""Every number a run is judged by, declared once: its key, label, unit, direction, format, help.

`METRICS` is the one list. The comparison's table (terminal and HTML), metrics.csv and
metrics.json, the seed summary, the "too small" cells, the run records (run.json), the results
database, its leaderboard and listings all iterate over it; none keeps its own list of names. A
new metric is one `Metric` here plus its computation (scoring sets the keys of the scoring kinds
in `ptycho_core.metrics.score` / `pipeline.score_object`; the run sets the recorded kinds in its
run.json, `harness.worker`).

Fields of a `Metric`:
    key       the name in every file and table (`amp_ssim`)
    label     the short column heading (`amp SSIM`)
    unit      "" for a pure number, else e.g. "dB", "rad", "px", "s", "MiB"
    better    "max" (higher is better), "min" (lower is better) or "" (no direction: never
              marked best, and a leaderboard on it ranks highest first)
    fmt       a `str.format` pattern for one value (`{:.3f}`)
    help      one line: what it measures
    kind      "score" (quality against the ground truth or the data), "coverage" (how much of
              the object was scored), "extra" (alignment and fit details of the scoring),
              "cost" (what the run cost) or "training" (how training ended); the first three are
              computed when a reconstruction is scored (`SCORED`), the last two are recorded by
              the run itself in its run.json (`RECORDED`)
    table     a column of the comparison's table (HTML report; the CSV and JSON have every metric)
    terminal  also a column of the terminal table
    listed    shown beside a run in `ptycho results` listings and the leaderboard
    flag      the coverage flag (a "coverage" key) that, when set, leaves this metric without a
              number: the cell reads "too small" instead of "-"

Standard library only (the CLI's listing reads it without numpy).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

#: Kinds computed when a reconstruction is scored, and kinds a run records in its run.json.
SCORED = ("score", "coverage", "extra")
RECORDED = ("cost", "training")
KINDS = SCORED + RECORDED

#: The headline metric: the default of every ranking (leaderboard, `ptycho results html`).
HEADLINE = "amp_ssim"


@dataclass(frozen=True)
class Metric:
    """One named number (see the module docstring for the fields)."""

    key: str
    label: str
    unit: str = ""
    better: str = ""
    fmt: str = "{:.3g}"
    help: str = ""
    kind: str = "score"
    table: bool = False
    terminal: bool = False
    listed: bool = False
    flag: str = ""

    def __post_init__(self):
        if self.better not in ("max", "min", ""):
            raise ValueError(f"metric {self.key}: better must be 'max', 'min' or '', not {self.better!r}")
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.key}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.terminal and not self.table:
            raise ValueError(f"metric {self.key}: a terminal column must be a table column")

    def format(self, value) -> str:
        """One value as the tables show it."""
        return self.fmt.format(value)


_AREA = "area_too_small"
_FRC = "frc_too_small"

#: Every metric, in table order (table columns first, then the rest in CSV order).
METRICS: tuple[Metric, ...] = (
    Metric("amp_ssim", "amp SSIM", "", "max", "{:.3f}", "amplitude SSIM over the scored pixels", table=True,
           terminal=True, listed=True, flag=_AREA),
    Metric("amp_psnr", "amp PSNR", "dB", "max", "{:.2f}", "amplitude PSNR in dB, peak = ground-truth range",
           table=True, flag=_AREA),
    Metric("amp_mae", "amp MAE", "", "min", "{:.4f}", "amplitude mean absolute error", table=True, flag=_AREA),
    Metric("amp_rmse", "amp RMSE", "", "min", "{:.4f}", "amplitude root mean square error", table=True, flag=_AREA),
    Metric("phase_ssim", "phase SSIM", "", "max", "{:.3f}", "phase SSIM after removing the mean phase", table=True,
           terminal=True, listed=True, flag=_AREA),
    Metric("phase_psnr", "phase PSNR", "dB", "max", "{:.2f}", "phase PSNR in dB", table=True, flag=_AREA),
    Metric("phase_mae", "phase MAE", "rad", "min", "{:.4f}", "mean absolute wrapped phase error, radians",
           table=True, flag=_AREA),
    Metric("phase_rmse", "phase RMSE", "rad", "min", "{:.4f}", "rms wrapped phase error, radians", table=True,
           flag=_AREA),
    Metric("frc_amp_px", "FRC amp px", "px", "min", "{:.2f}", "amplitude FRC resolution at the threshold, pixels",
           table=True, terminal=True, listed=True, flag=_FRC),
    Metric("frc_phase_px", "FRC phase px", "px", "min", "{:.2f}", "phase FRC resolution at the threshold, pixels",
           table=True, flag=_FRC),
    Metric("covered_fraction", "covered", "", "", "{:.0%}",
           "share of the scan rectangle covered (stitching weight above the region threshold)", "coverage",
           table=True, terminal=True),
    Metric("twin_share", "twin", "", "min", "{:.2f}",
           "share of test patches nearer the twin image of their true patch than the patch itself "
           "(0: faithful; about 0.5: undecided between object and twin)", table=True, terminal=True),
    Metric("data_error", "data err", "", "min", "{:.4f}", "||s A_hat - A|| / ||A|| at the test positions",
           table=True, terminal=True, listed=True),
    Metric("parameters", "params", "", "", "{:,.0f}", "trainable parameters", "cost", table=True, terminal=True,
           listed=True),
    Metric("train_seconds", "train s", "s", "min", "{:.1f}",
           "training wall time, seconds: the generator's whole `fit` (every epoch with its validation; "
           "imports and saving excluded; none: iterative)", "cost", table=True, terminal=True, listed=True),
    Metric("reconstruct_seconds", "recon s", "s", "min", "{:.2f}",
           "wall time reconstructing the test patterns: timed prediction, or the iterative engine's run", "cost",
           table=True, terminal=True),
    Metric("inference_patterns_per_s", "pat/s", "patterns/s", "max", "{:,.0f}",
           "test patterns reconstructed per second (learned: after a warm-up call, the same batch for every "
           "row; iterative: the whole reconstruction)", "cost", table=True, terminal=True),
    Metric("peak_rss_mib", "peak MiB", "MiB", "min", "{:,.0f}", "the run's peak resident memory", "cost",
           table=True, terminal=True),
    Metric("peak_gpu_mib", "peak GPU MiB", "MiB", "min", "{:,.0f}", "torch.cuda.max_memory_allocated", "cost",
           table=True),
    Metric("frc_amp_cpp", "FRC amp cpp", "cycles/px", "max", "{:.3f}",
           "amplitude FRC resolution at the threshold, cycles per pixel", "score", flag=_FRC),
    Metric("frc_phase_cpp", "FRC phase cpp", "cycles/px", "max", "{:.3f}",
           "phase FRC resolution at the threshold, cycles per pixel", "score", flag=_FRC),
    Metric("data_scale", "data scale", "", "", "{:.4g}", "the real scale s fitted in the data-space error", "extra"),
    Metric("shift_y", "shift y", "px", "", "{:.2f}", "registration shift applied along y (0: not registered)",
           "extra"),
    Metric("shift_x", "shift x", "px", "", "{:.2f}", "registration shift applied along x (0: not registered)",
           "extra"),
    Metric("ramp_y", "ramp y", "rad/px", "", "{:.4f}", "phase ramp removed along y (0: not removed)", "extra"),
    Metric("ramp_x", "ramp x", "rad/px", "", "{:.4f}", "phase ramp removed along x (0: not removed)", "extra"),
    Metric("epochs_run", "epochs", "", "", "{:.0f}", "epochs trained (iterations of an iterative engine)",
           "training"),
    Metric("final_loss", "final loss", "", "min", "{:.4g}", "the training loss of the last epoch", "training"),
    Metric("best_val_loss", "best val loss", "", "min", "{:.4g}",
           "the lowest validation loss of any epoch (none without a validation set)", "training"),
    Metric("region_pixels", "region px", "px", "", "{:,.0f}", "covered pixels of the scan rectangle", "coverage"),
    Metric("scored_fraction", "scored", "", "", "{:.0%}",
           "share of the scan rectangle SSIM-scored (pixels whose whole SSIM window is covered)", "coverage"),
    Metric("frc_side", "FRC side", "px", "", "{:.0f}", "side of the covered square the FRC is computed on",
           "coverage"),
    Metric(_FRC, "FRC", "", "", "{:.0f}", "1 when the FRC square is too small for the FRC to mean anything",
           "coverage"),
    Metric(_AREA, "SSIM, PSNR, MAE, RMSE", "", "", "{:.0f}",
           "1 when too few pixels are scored for SSIM, PSNR, MAE and RMSE to mean anything", "coverage"),
)  # fmt: skip


def _kinds(kind) -> tuple[str, ...]:
    return (kind,) if isinstance(kind, str) else tuple(kind)


def select(kind=None, *, table: bool | None = None, terminal: bool | None = None, listed: bool | None = None):
    """The metrics (in table order) of `kind` (a kind or a tuple of kinds; None: all) with the
    given flags (None: either)."""
    kinds = None if kind is None else _kinds(kind)
    return tuple(
        m
        for m in METRICS
        if (kinds is None or m.kind in kinds)
        and (table is None or m.table == table)
        and (terminal is None or m.terminal == terminal)
        and (listed is None or m.listed == listed)
    )


def keys(kind=None, **flags) -> tuple[str, ...]:
    """The keys of `select(kind, **flags)`."""
    return tuple(m.key for m in select(kind, **flags))


def find(key: str) -> Metric | None:
    """The metric named `key`, or None."""
    return next((m for m in METRICS if m.key == key), None)


def metric(key: str) -> Metric:
    """The metric named `key` (KeyError naming the known ones otherwise)."""
    found = find(key)
    if found is None:
        raise KeyError(f"no metric {key!r}; known: {', '.join(keys())}")
    return found


def better(key: str) -> str:
    """ "max" or "min": which way `key` improves (a metric without a direction, or an unknown
    name, ranks highest first)."""
    found = find(key)
    return found.better if found is not None and found.better else "max"


def too_small_flags() -> dict[str, tuple[str, ...]]:
    """{coverage flag: the metrics it leaves without a number}, in table order."""
    out: dict[str, tuple[str, ...]] = {}
    for m in METRICS:
        if m.flag:
            out[m.flag] = out.get(m.flag, ()) + (m.key,)
    return out


def finite(value) -> bool:
    """True for a real, finite number (numpy scalars included); False for bools, strings, None,
    NaN and infinities. The one test of "this metric has a value"."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
