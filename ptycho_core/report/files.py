"""metrics.csv and metrics.json of a comparison, each written atomically."""

from __future__ import annotations

import csv
from pathlib import Path

from ptycho_core import metric_registry as registry
from ptycho_core import rundir
from ptycho_core.report.cells import TOO_SMALL_TEXT, columns, too_small
from ptycho_core.report.seeds import ROW_FIELDS


def csv_columns(rows: list[dict], seeds: int = 1) -> list[str]:
    """metrics.csv's header: generator, status, every registered metric in order (each followed
    by `<key>_std` with several seeds), then the summary row's fields."""
    keys = ["generator", "status"]
    for key in registry.keys():
        keys.append(key)
        if seeds > 1:
            keys.append(f"{key}_std")
    return keys + list(ROW_FIELDS)


def _csv_cell(row: dict, key: str):
    if row.get(key) is None:
        return TOO_SMALL_TEXT if too_small(row, key) else ""
    return row.get(key)


def write_csv(rows: list[dict], path, seeds: int = 1) -> Path:
    """metrics.csv: one row per generator; empty cells for missing values."""
    keys = csv_columns(rows, seeds)
    with rundir.atomic(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_cell(row, k) for k in keys})
    return Path(path)


def json_columns() -> list[dict]:
    """metrics.json's "columns": the table's columns as the registry declares them."""
    return [{"key": c.key, "label": c.label, "unit": c.unit, "better": c.better, "help": c.help} for c in columns()]


def write_json(payload: dict, path) -> Path:
    """Strict JSON (NaN and inf become null), atomically (`rundir.write_json`)."""
    return rundir.write_json(path, payload)
