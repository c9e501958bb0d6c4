"""What the results database keeps of a comparison or a run, built from the harness's typed
records (`rundir.Row`, `rundir.RunRecord`, the provenance block) or from a comparison folder on
disk (its metrics.json and runs/*/run.json), so that recording and `ptycho results import`
store the same thing. Plain data; no database code here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ptycho_core import __version__, rundir
from ptycho_core.errors import PtychoError
from ptycho_core.host import git_sha, peak_rss_mib


@dataclass
class RunEntry:
    """One run: its `runs` columns and its numbers ({name: float})."""

    columns: dict
    metrics: dict = field(default_factory=dict)


@dataclass
class ComparisonEntry:
    """One comparison's `comparisons` columns and its runs (columns None: runs of no comparison)."""

    columns: dict | None
    runs: list[RunEntry]


def numbers(values: dict) -> dict[str, float]:
    """The finite numbers among `values` as floats (booleans count as 0/1; the rest is dropped)."""
    out = {}
    for key, value in values.items():
        if isinstance(value, (int, float)) and not (isinstance(value, float) and not math.isfinite(value)):
            out[str(key)] = float(value)
    return out


def comparison_key(folder: Path, provenance: dict) -> str:
    """A comparison's identity, on which recording and importing agree: its folder and its plan
    (each run's name and input hash, provenance "plan"). A resumed comparison, or one rerun with
    every run reused, is the same comparison, so recording it again replaces it (like a database
    row keyed on its content: a kill between commit and exit cannot leave two). Folders written
    before the plan was recorded fall back to their start time."""
    plan = provenance.get("plan")
    identity = json.dumps(plan, sort_keys=True) if isinstance(plan, dict) and plan else provenance.get("started")
    return hashlib.sha256(f"{Path(folder).resolve()}\n{identity}".encode()).hexdigest()


def _unix(started: str | None) -> float | None:
    try:
        return time.mktime(time.strptime(str(started), "%Y-%m-%dT%H:%M:%S"))
    except (TypeError, ValueError, OverflowError):
        return None


def from_compare(result) -> ComparisonEntry:
    """The entry of a finished `harness.run` (a `CompareResult`)."""
    status = {0: "ok", 1: "failed"}.get(result.exit_code, "interrupted")
    return _comparison(Path(result.out_dir), list(result.runs), result.provenance, status)


def from_folder(folder) -> ComparisonEntry:
    """The entry of a comparison folder written before (its metrics.json); PtychoError when it is none."""
    folder = Path(folder)
    payload = rundir.read_json(folder / "metrics.json")
    if not isinstance(payload.get("runs"), list) or not isinstance(payload.get("provenance"), dict):
        raise PtychoError(f"{folder / 'metrics.json'}: not a comparison's metrics.json (no runs and provenance)")
    rows = [rundir.Row.from_dict(r) for r in payload["runs"] if isinstance(r, dict) and "generator" in r]
    status = "ok" if all(r.ok for r in rows) else "failed"
    return _comparison(folder, rows, payload["provenance"], status)


def _comparison(folder: Path, rows: list, provenance: dict, status: str) -> ComparisonEntry:
    data = provenance.get("data") or {}
    columns = {
        "key": comparison_key(folder, provenance),
        "folder": str(folder.resolve()),
        "started": _unix(provenance.get("started")),
        "wall_seconds": provenance.get("wall_seconds"),
        "status": status,
        "ptycho_version": provenance.get("ptycho"),
        "git_sha": provenance.get("git_sha"),
        "data_fingerprint": data.get("fingerprint"),
        "data_description": data.get("description"),
        "gridsize": provenance.get("gridsize"),
        "seeds": len(provenance.get("seeds") or []) or None,
        "provenance": rundir.json_safe(provenance),
    }
    return ComparisonEntry(columns, [_compare_run(folder, row, provenance, columns) for row in rows])


def _compare_run(folder: Path, row, provenance: dict, comparison: dict) -> RunEntry:
    record = rundir.RunRecord.read(folder / row.run_dir) if row.run_dir else None
    record = record or rundir.RunRecord(name=row.run, hash="")
    declared = next((g for g in provenance.get("generators") or [] if g.get("name") == row.generator), {})
    train_config = record.train_config or declared.get("train_config") or provenance.get("train_config") or {}
    columns = {
        "command": "compare",
        "name": row.run,
        "generator": row.generator,
        "plugin": row.plugin or record.distribution,
        "plugin_version": row.version or record.version,
        "framework": row.framework or record.framework,
        "factory": record.factory or declared.get("factory"),
        "options": rundir.json_safe(record.options),
        "train_config": rundir.json_safe(train_config),
        "data_fingerprint": comparison["data_fingerprint"],
        "data_description": comparison["data_description"],
        "split": rundir.json_safe(provenance.get("split")),
        "gridsize": comparison["gridsize"],
        "seed": row.seed,
        **_budget(train_config),
        "gpu": row.gpu,
        "hardware": rundir.json_safe(record.hardware or provenance.get("hardware")),
        "ptycho_version": comparison["ptycho_version"],
        "git_sha": comparison["git_sha"],
        "started": record.started or comparison["started"],
        "finished": record.finished,
        "status": row.status,
        "reason": row.reason,
        "reused": bool(row.reused),
        "folder": str((folder / row.run_dir).resolve()) if row.run_dir else None,
        "hash": record.hash or None,
    }
    return RunEntry(columns, numbers(row.metrics))


def _budget(train_config: dict) -> dict:
    return {
        "epochs": train_config.get("epochs"),
        "train_timeout": train_config.get("timeout"),
        "device": train_config.get("device"),
        "precision": train_config.get("precision"),
    }


def _here() -> dict:
    """Versions and hardware of this process (for runs made outside a comparison)."""
    import platform  # lazy: only this fallback needs it

    return {
        "ptycho_version": __version__,
        "git_sha": git_sha(),
        "hardware": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }


def lone_run(command: str, *, spec=None, generator: str = "", started: float, status="ok", reason="", **fields):
    """The entry of a `ptycho train` / `ptycho reconstruct` run (no comparison).

    spec: the `GeneratorSpec` when known; fields: `runs` columns (options, train_config,
    data_fingerprint, data_description, gridsize, seed, folder, ...) and `metrics` ({name: number}).
    """
    metrics = numbers(fields.pop("metrics", None) or {})
    train_config = fields.get("train_config") or {}
    columns = {
        "command": command,
        "name": command,
        "generator": spec.name if spec is not None else generator,
        "plugin": spec.distribution if spec is not None else None,
        "plugin_version": spec.version if spec is not None else None,
        "framework": spec.framework if spec is not None else None,
        "factory": spec.factory if spec is not None else None,
        **_budget(train_config),
        **_here(),
        "started": started,
        "finished": time.time(),
        "status": status,
        "reason": reason,
        "reused": False,
        **{k: rundir.json_safe(v) for k, v in fields.items()},
    }
    if "peak_rss_mib" not in metrics and (rss := peak_rss_mib()) is not None:
        metrics["peak_rss_mib"] = rss
    return ComparisonEntry(None, [RunEntry(columns, metrics)])
