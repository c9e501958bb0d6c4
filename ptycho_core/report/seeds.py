"""The seed summary: one `rundir.Summary` per generator from its per-seed runs (`rundir.Row`s):
mean and sample standard deviation of every registered metric over the successful seeds."""

from __future__ import annotations

import math

from ptycho_core import metric_registry as registry
from ptycho_core import rundir
from ptycho_core.metric_registry import finite

#: What a summary row says about its generator besides the metrics (metrics.csv's last columns).
ROW_FIELDS = ("framework", "kind", "plugin", "version", "runs", "ok_runs", "reused")


def _status(group: list[rundir.Row], ok: list[rundir.Row]) -> str:
    failed = [r for r in group if not r.ok]
    if not failed:
        return "ok"
    if not ok:
        return f"failed: {failed[0].reason}"
    return f"failed {len(failed)}/{len(group)}: {failed[0].reason}"


def summarise(runs: list[rundir.Row], seeds: int = 1) -> list[rundir.Summary]:
    """One `Summary` per generator from per-(generator, seed) runs.

    With seeds == 1 the row holds the run's numbers; otherwise `metrics[key]` is the mean over the
    successful seeds and `std[key]` the sample standard deviation. `status` is "ok" when every
    seed succeeded, else "failed: <reason>" (with "k/K" when some seeds succeeded).
    """
    groups: dict[str, list[rundir.Row]] = {}
    for r in runs:
        groups.setdefault(r.generator, []).append(r)
    rows = []
    for label, group in groups.items():
        ok = [r for r in group if r.ok]
        first = group[0]
        row = rundir.Summary(
            generator=label,
            status=_status(group, ok),
            framework=first.framework,
            kind=first.kind,
            plugin=first.plugin,
            version=first.version,
            runs=len(group),
            ok_runs=len(ok),
            reused=all(r.reused for r in group),
        )
        for key in registry.keys():
            values = [r.metrics[key] for r in ok if finite(r.metrics.get(key))]
            if seeds == 1 or len(group) == 1:
                row.metrics[key] = values[0] if values else None
                continue
            floats = [float(v) for v in values]
            mean = sum(floats) / len(floats) if floats else None
            row.metrics[key] = mean
            if len(floats) > 1:
                row.std[key] = math.sqrt(sum((v - mean) ** 2 for v in floats) / (len(floats) - 1))
            else:
                row.std[key] = 0.0 if floats else None
        rows.append(row)
    return rows
