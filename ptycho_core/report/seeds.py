"""The seed summary: one row per generator from its per-seed runs (mean and sample standard
deviation of every registered metric over the successful seeds)."""

from __future__ import annotations

import math

from ptycho_core import metric_registry as registry
from ptycho_core.metric_registry import finite

#: What a summary row says about its generator besides the metrics (metrics.csv's last columns).
ROW_FIELDS = ("framework", "kind", "plugin", "version", "runs", "ok_runs", "reused")


def _status(group: list[dict], ok: list[dict]) -> str:
    failed = [r for r in group if r["status"] != "ok"]
    if not failed:
        return "ok"
    if not ok:
        return f"failed: {failed[0].get('reason', '')}"
    return f"failed {len(failed)}/{len(group)}: {failed[0].get('reason', '')}"


def summarise(runs: list[dict], seeds: int = 1) -> list[dict]:
    """One row per generator from per-(generator, seed) runs.

    With seeds == 1 the row holds the run's numbers; otherwise `<key>` is the mean over the
    successful seeds and `<key>_std` the sample standard deviation. `status` is "ok" when every
    seed succeeded, else "failed: <reason>" (with "k/K" when some seeds succeeded).
    """
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(r["generator"], []).append(r)
    rows = []
    for label, group in groups.items():
        ok = [r for r in group if r["status"] == "ok"]
        first = group[0]
        about = {
            "framework": first.get("framework"),
            "kind": first.get("kind", "learned"),
            "plugin": first.get("plugin"),
            "version": first.get("version"),
            "runs": len(group),
            "ok_runs": len(ok),
            "reused": all(r.get("reused") for r in group),
        }
        row = {"generator": label, **{k: about[k] for k in ROW_FIELDS}, "status": _status(group, ok)}
        for key in registry.keys():
            values = [r[key] for r in ok if finite(r.get(key))]
            if seeds == 1 or len(group) == 1:
                row[key] = values[0] if values else None
                continue
            floats = [float(v) for v in values]
            row[key] = sum(floats) / len(floats) if floats else None
            if len(floats) > 1:
                row[f"{key}_std"] = math.sqrt(sum((v - row[key]) ** 2 for v in floats) / (len(floats) - 1))
            else:
                row[f"{key}_std"] = 0.0 if floats else None
        rows.append(row)
    return rows
