"""What must hold of a comparison folder and the results database after any fault (a killed
parent, a stopped database server, a full disk): the fault tests and `benchmarks/soak_kill.py`
ask these functions, which return the problems found (an empty list: consistent).

A folder is consistent when every published run folder (`runs/<name>/`) that has DONE is
complete (run.json "ok" with the hash DONE names, history.json, a readable recon.npz), and, once
the comparison finished (metrics.json), every "ok" row has such a folder and its scores, and no
temporary file of a killed writer is left. The database is consistent when each finished comparison folder is recorded once
and each of its runs once.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from ptycho_core import rundir
from ptycho_core.results.schema import tables
from ptycho_core.results.store import Store


def folder_problems(out, finished: bool = True) -> list[str]:
    """Problems of the comparison folder `out` (module docstring). `finished`: the comparison ran
    to its end, so no temporary file of a killed writer may remain (after a kill they may, until
    the resume removes them)."""
    out = Path(out)
    problems = []
    runs = out / rundir.RUNS_DIR
    for run_dir in sorted(p for p in runs.glob("*") if p.is_dir() and not p.name.startswith(".")):
        problems += _run_problems(run_dir)
    leftovers = sorted(str(p.relative_to(out)) for p in out.rglob(".*.tmp*") if ".partial" not in str(p))
    if finished and leftovers:
        problems.append(f"{out}: temporary files {leftovers}")
    metrics = out / "metrics.json"
    if not metrics.exists():
        return problems
    try:
        payload = json.loads(metrics.read_text())
    except ValueError as exc:
        return [*problems, f"{metrics}: not valid JSON ({exc})"]
    for row in payload.get("runs", []):
        run_dir = out / row.get("run_dir", "")
        if row.get("status") == "ok":
            if not (run_dir / rundir.DONE).is_file():
                problems.append(f"{run_dir}: an ok row without DONE")
            if not (run_dir / rundir.METRICS_JSON).is_file():
                problems.append(f"{run_dir}: an ok row without its metrics.json")
    return problems


def _run_problems(run_dir: Path) -> list[str]:
    done = run_dir / rundir.DONE
    if not done.exists():
        return []
    problems = []
    record = rundir.read_json(run_dir / rundir.RUN_JSON)
    text = done.read_text()
    if not text.endswith("\n") or text.strip() != record.get("hash"):
        problems.append(f"{run_dir}: DONE ({text!r}) does not name the hash of its run.json")
    if record.get("status") != "ok":
        problems.append(f"{run_dir}: DONE beside a run.json with status {record.get('status')!r}")
    if not (run_dir / rundir.HISTORY_JSON).is_file():
        problems.append(f"{run_dir}: DONE without history.json")
    try:
        with np.load(run_dir / rundir.RECON_NPZ, allow_pickle=False) as z:
            [z[k] for k in z.files]
    except (OSError, ValueError, KeyError, EOFError) as exc:
        problems.append(f"{run_dir}: DONE beside an unreadable recon.npz ({exc})")
    return problems


def database_problems(db, folders) -> list[str]:
    """Problems of the results database `db` (a URL or file) with the finished comparison `folders`:
    each recorded exactly once, with each of its runs exactly once."""
    t = tables()
    problems = []
    with Store.open(db) as store, store.transaction() as conn:
        for folder in folders:
            folder = Path(folder).resolve()
            ids = conn.execute(sa.select(t.comparisons.c.id).where(t.comparisons.c.folder == str(folder))).scalars()
            ids = list(ids)
            if len(ids) != 1:
                problems.append(f"{folder}: recorded {len(ids)} times")
                continue
            rows = json.loads((folder / "metrics.json").read_text()).get("runs", [])
            names = conn.execute(sa.select(t.runs.c.name).where(t.runs.c.comparison_id == ids[0])).scalars()
            names = sorted(names)
            if names != sorted(r["run"] for r in rows):
                problems.append(f"{folder}: runs {names} in the database, {sorted(r['run'] for r in rows)} on disk")
            for row in rows:
                run_folder = str((folder / row["run_dir"]).resolve())
                count = conn.execute(
                    sa.select(sa.func.count()).select_from(t.runs).where(t.runs.c.folder == run_folder)
                ).scalar()
                if count != 1:
                    problems.append(f"{run_folder}: in the database {count} times")
    return problems
