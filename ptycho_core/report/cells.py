"""The cells of a comparison's table: a value as the tables show it, the best value per column,
the "too small" cells, and the notes on what was scored. Columns come from
`ptycho_core.metric_registry` (its `table` metrics, in its order).
"""

from __future__ import annotations

from ptycho_core import metric_registry as registry
from ptycho_core import metrics
from ptycho_core.metric_registry import finite

#: The cell of a metric left without a number because the scored area was too small.
TOO_SMALL_TEXT = "too small"


def columns() -> tuple[registry.Metric, ...]:
    """The table's columns: the registry's `table` metrics, in order."""
    return registry.select(table=True)


def _flag_set(row: dict, flag: str) -> bool:
    return finite(row.get(flag)) and row[flag] >= 0.5


def too_small(row: dict, key: str) -> bool:
    """True when `key` has no number because the row's scored area was too small (its flag set)."""
    if finite(row.get(key)):
        return False
    found = registry.find(key)
    return found is not None and bool(found.flag) and _flag_set(row, found.flag)


def best_values(rows: list[dict]) -> dict[str, float]:
    """Per column with a direction, the best value among successful rows."""
    best = {}
    for col in columns():
        values = [r[col.key] for r in rows if r["status"] == "ok" and finite(r.get(col.key))]
        if values and col.better:
            best[col.key] = max(values) if col.better == "max" else min(values)
    return best


def format_value(row: dict, col: registry.Metric) -> str:
    """A cell: the value (or mean ± std when the row has a std), '-' when missing."""
    value = row.get(col.key)
    if not finite(value):
        return TOO_SMALL_TEXT if too_small(row, col.key) else "-"
    text = col.format(value)
    std = row.get(f"{col.key}_std")
    if finite(std):
        text += " ± " + col.format(std)
    return text


def coverage_note(rows: list[dict]) -> str:
    """One sentence: how much of the scan rectangle was covered and scored ('' when unknown)."""
    row = next((r for r in rows if finite(r.get("covered_fraction"))), None)
    if row is None:
        return ""
    weight, window = metrics.REGION_WEIGHT_FRACTION, metrics.SSIM_WINDOW
    text = f"Covered: {row['covered_fraction']:.0%} of the scan rectangle (stitching weight >= {weight:.0%} of the max)"
    if finite(row.get("scored_fraction")):
        text += (
            f"; SSIM scored on {row['scored_fraction']:.0%} (pixels whose whole {window}x{window} window is covered)"
        )
    if finite(row.get("frc_side")):
        text += f"; FRC on a {row['frc_side']:.0f} px covered square"
    small = [registry.metric(flag).label for flag in registry.too_small_flags() if _flag_set(row, flag)]
    return text + (f"; {TOO_SMALL_TEXT} to score: {', '.join(small)}." if small else ".")


def method_note() -> str:
    """How the scored area and the FRC are chosen, with the thresholds (ptycho_core.metrics)."""
    weight, window = metrics.REGION_WEIGHT_FRACTION, metrics.SSIM_WINDOW
    return (
        f"Only covered pixels (stitching weight >= {weight:.0%} of the max) are scored: MAE, RMSE and PSNR over "
        f"them, SSIM over the pixels whose whole {window}x{window} window is covered. The FRC is computed on the "
        "largest square lying wholly inside the covered area, each image mean-removed and Hann-apodised inside "
        f"it; the resolution is the first crossing of {metrics.FRC_THRESHOLD:g}. '{TOO_SMALL_TEXT}': the FRC "
        f"square is under {metrics.FRC_MIN_SIDE} px, or fewer than {metrics.MIN_SCORED_PIXELS} pixels are "
        "scored; the metric is then not given a number."
    )
