"""Writing entries: one transaction per comparison (its row, its runs, their metrics), so that a
process killed mid-way leaves the comparison whole or absent. Recording a comparison again (the
same folder and plan, `entries.comparison_key`: a resumed or repeated comparison, or `ptycho
results import` of a recorded folder) replaces it, so every run is in the database once.

`record_safely` is what `ptycho compare`, `train` and `reconstruct` call: a database error is a
warning, never a failed command; the files on disk stay the source of truth.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ptycho_core.errors import PtychoError
from ptycho_core.results import entries
from ptycho_core.results.entries import ComparisonEntry
from ptycho_core.results.schema import tables
from ptycho_core.results.store import Store


def write(store, entry: ComparisonEntry) -> int | None:
    """Store `entry`; returns the comparison's id (None for runs of no comparison)."""
    return store.guarded(_write, store, entry)


def _write(store, entry: ComparisonEntry) -> int | None:
    import sqlalchemy as sa  # lazy: `ptycho results --help` must not import SQLAlchemy

    t = tables()
    now = time.time()
    with store.transaction() as conn:
        comparison_id = None
        if entry.columns is not None:
            conn.execute(sa.delete(t.comparisons).where(t.comparisons.c.key == entry.columns["key"]))
            comparison_id = conn.execute(
                sa.insert(t.comparisons).values(**entry.columns, recorded=now).returning(t.comparisons.c.id)
            ).scalar_one()
        for run in entry.runs:
            run_id = conn.execute(
                sa.insert(t.runs)
                .values(**run.columns, comparison_id=comparison_id, recorded=now)
                .returning(t.runs.c.id)
            ).scalar_one()
            if run.metrics:
                conn.execute(
                    sa.insert(t.metrics), [{"run_id": run_id, "name": k, "value": v} for k, v in run.metrics.items()]
                )
    return comparison_id


def record_safely(build: Callable[[], ComparisonEntry], db=None, warn: Callable[[str], None] = print) -> str | None:
    """Build and store an entry; on any error call `warn` with one line and return None.

    Returns a line saying where it was recorded (for the command to show).
    """
    try:
        entry = build()
        with Store.open(db) as store:
            comparison_id = write(store, entry)
            where = store.where
    except Exception as exc:  # recording must never break the command that ran
        warn(f"warning: not recorded in the results database: {_one_line(exc)} (the files on disk are complete)")
        return None
    if comparison_id is None:
        return f"recorded in {where}"
    return f"recorded as comparison {comparison_id} in {where} (ptycho results list)"


def record_comparison(result, db=None, warn: Callable[[str], None] = print) -> str | None:
    """Record a finished comparison (`CompareResult`); see `record_safely`."""
    return record_safely(lambda: entries.from_compare(result), db, warn)


def import_folders(store, folders) -> tuple[list[dict], list[dict]]:
    """Index every comparison folder under `folders` (any folder holding a comparison's metrics.json).

    Returns (imported: [{"folder", "comparison", "runs"}], problems: [{"folder", "reason"}]).
    """
    imported, problems = [], []
    for folder in comparison_folders(folders):
        try:
            entry = entries.from_folder(folder)
        except PtychoError as exc:
            problems.append({"folder": str(folder), "reason": str(exc)})
            continue
        comparison_id = write(store, entry)
        imported.append({"folder": str(folder), "comparison": comparison_id, "runs": len(entry.runs)})
    return imported, problems


def comparison_folders(folders) -> list[Path]:
    """Folders under `folders` that hold metrics.json and runs/ (sorted; run folders excluded)."""
    found = set()
    for top in folders:
        for metrics in sorted(Path(top).rglob("metrics.json")):
            if (metrics.parent / "runs").is_dir():
                found.add(metrics.parent.resolve())
    return sorted(found)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
