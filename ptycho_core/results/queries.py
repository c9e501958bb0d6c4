"""Questions to the results database, answered as plain dicts (the CLI renders them).

    list_runs     recent runs, newest first
    leaderboard   the best run per generator on each dataset by any metric (window function in SQL)
    show          one run: every column, every metric, its comparison
    diff          two runs: what differs in options, versions, data and metrics
    export_rows   every run, one flat dict each (run columns + metric columns)

`Filters` narrow every query: generator, plugin, plugin version, dates, gridsize, dataset.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from ptycho_core import metric_registry
from ptycho_core.errors import UsageError
from ptycho_core.results.schema import tables

#: `runs` columns a listing shows (the rest is in `show`).
LISTED = ("id", "comparison_id", "command", "generator", "plugin", "plugin_version", "gridsize", "seed", "status")


@dataclass
class Filters:
    """Narrowing of every query. generator/plugin/version: comma-separated names; since/until:
    dates (YYYY-MM-DD or ISO time, local); dataset: a data fingerprint or its prefix."""

    generator: str | None = None
    plugin: str | None = None
    version: str | None = None
    since: str | None = None
    until: str | None = None
    gridsize: int | None = None
    dataset: str | None = None
    command: str | None = None

    def clauses(self) -> list:
        r = tables().runs
        out = []
        for column, value in (("generator", self.generator), ("plugin", self.plugin), ("plugin_version", self.version)):
            if value:
                out.append(r.c[column].in_([v.strip() for v in value.split(",") if v.strip()]))
        if self.since:
            out.append(r.c.started >= parse_date(self.since, "--since"))
        if self.until:
            out.append(r.c.started < parse_date(self.until, "--until", end=True))
        if self.gridsize is not None:
            out.append(r.c.gridsize == self.gridsize)
        if self.dataset:
            out.append(r.c.data_fingerprint.startswith(self.dataset, autoescape=True))
        if self.command:
            out.append(r.c.command == self.command)
        return out


def parse_date(text: str, flag: str, end: bool = False) -> float:
    """Unix time of a local date or ISO time; with `end`, a bare date means the end of that day."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    if end and len(text) <= 10:
        moment += dt.timedelta(days=1)
    return moment.timestamp()


def iso(seconds: float | None) -> str | None:
    """A Unix time as local ISO text (seconds), or None."""
    return None if seconds is None else dt.datetime.fromtimestamp(seconds).isoformat(timespec="seconds")


def listed() -> tuple[str, ...]:
    """The metrics shown beside a run in listings and the leaderboard (the registry's `listed`)."""
    return metric_registry.keys(listed=True)


def _metrics_of(conn, run_ids, names=None) -> dict[int, dict]:
    import sqlalchemy as sa  # lazy: `ptycho results --help` must not import SQLAlchemy

    m = tables().metrics
    ids = run_ids if isinstance(run_ids, sa.Select) else list(run_ids)
    query = sa.select(m.c.run_id, m.c.name, m.c.value).where(m.c.run_id.in_(ids))
    if names is not None:
        query = query.where(m.c.name.in_(list(names)))
    out: dict[int, dict] = {}
    for run_id, name, value in conn.execute(query):
        out.setdefault(run_id, {})[name] = value
    return out


def _run_dict(row) -> dict:
    out = dict(row._mapping)
    for key in ("started", "finished", "recorded"):
        if key in out:
            out[key] = iso(out[key])
    return out


def list_runs(store, filters: Filters | None = None, limit: int = 20) -> list[dict]:
    """The newest runs (at most `limit`; 0: all), each with its headline metrics."""
    import sqlalchemy as sa  # lazy: `ptycho results --help` must not import SQLAlchemy

    r = tables().runs
    columns = [r.c[name] for name in LISTED] + [r.c.started, r.c.data_description, r.c.folder, r.c.reason]
    query = sa.select(*columns).where(*(filters or Filters()).clauses()).order_by(r.c.id.desc())
    if limit:
        query = query.limit(limit)

    def work():
        with store.transaction() as conn:
            rows = [_run_dict(row) for row in conn.execute(query)]
            metrics = _metrics_of(conn, [row["id"] for row in rows], listed())
        return [{**row, "metrics": metrics.get(row["id"], {})} for row in rows]

    return store.guarded(work)


def leaderboard(
    store, metric: str = metric_registry.HEADLINE, filters: Filters | None = None, order: str | None = None
) -> dict:
    """The best successful run per (dataset, generator) by `metric`.

    order: "max" (higher is better) or "min"; default from the metric's registry entry. Returns
    {"metric", "order", "datasets": [{"fingerprint", "description", "rows": [...]}]}, rows best first.
    """
    order = order or metric_registry.better(metric)
    if order not in ("max", "min"):
        raise UsageError(f"--order must be max or min, not {order!r}")
    return store.guarded(_leaderboard, store, metric, filters or Filters(), order)


def _best_query(metric: str, filters: Filters, order: str):
    import sqlalchemy as sa  # lazy: `ptycho results --help` must not import SQLAlchemy

    t = tables()
    r, m = t.runs, t.metrics
    value = m.c.value.desc() if order == "max" else m.c.value.asc()
    rank = sa.func.row_number().over(
        partition_by=(r.c.data_fingerprint, r.c.generator), order_by=(value, r.c.id.desc())
    )
    ranked = (
        sa.select(r.c.id, m.c.value, rank.label("rank"))
        .join(m, sa.and_(m.c.run_id == r.c.id, m.c.name == metric))
        .where(r.c.status == "ok", *filters.clauses())
        .subquery()
    )
    return sa.select(ranked.c.id, ranked.c.value).where(ranked.c.rank == 1)


def _leaderboard(store, metric: str, filters: Filters, order: str) -> dict:
    import sqlalchemy as sa  # lazy: `ptycho results --help` must not import SQLAlchemy

    t = tables()
    r, c = t.runs, t.comparisons
    with store.transaction() as conn:
        best = dict(conn.execute(_best_query(metric, filters, order)).all())
        details = conn.execute(
            sa.select(*[r.c[n] for n in LISTED], r.c.data_fingerprint, r.c.data_description, r.c.started)
            .add_columns(r.c.options, r.c.folder, c.c.folder.label("comparison_folder"))
            .outerjoin(c, c.c.id == r.c.comparison_id)
            .where(r.c.id.in_(list(best)))
        ).all()
        metrics = _metrics_of(conn, best)
    datasets: dict[str, dict] = {}
    for row in details:
        item = _run_dict(row)
        item.update(value=best[item["id"]], metrics=metrics.get(item["id"], {}), report=_report(item))
        fingerprint = item.pop("data_fingerprint") or ""
        group = datasets.setdefault(
            fingerprint, {"fingerprint": fingerprint, "description": item["data_description"], "rows": []}
        )
        group["rows"].append(item)
    for group in datasets.values():
        group["rows"].sort(key=lambda row: row["value"], reverse=order == "max")
    return {
        "metric": metric,
        "order": order,
        "datasets": sorted(datasets.values(), key=lambda g: g["description"] or ""),
    }


def _report(item: dict) -> str | None:
    folder = item.pop("comparison_folder", None)
    return str(Path(folder) / "report.html") if folder else None


def find_run(store, run: str) -> int:
    """A run's id from `RUN`: its id, or its run folder's path."""
    import sqlalchemy as sa  # lazy: `ptycho results --help` must not import SQLAlchemy

    if str(run).isdigit():
        return int(run)
    r = tables().runs
    with store.transaction() as conn:
        found = conn.execute(sa.select(r.c.id).where(r.c.folder == str(Path(run).resolve())).order_by(r.c.id.desc()))
        run_id = found.scalar()
    if run_id is None:
        raise UsageError(f"{run}: no such run in {store.where} (give a run id from `ptycho results list`)")
    return run_id


def show(store, run: str) -> dict:
    """Everything recorded about one run (id or folder), with its comparison's summary."""
    return store.guarded(_show, store, find_run(store, run))


def _show(store, run_id: int) -> dict:
    import sqlalchemy as sa  # lazy: `ptycho results --help` must not import SQLAlchemy

    t = tables()
    with store.transaction() as conn:
        row = conn.execute(sa.select(t.runs).where(t.runs.c.id == run_id)).first()
        if row is None:
            raise UsageError(f"run {run_id}: no such run in {store.where} (see `ptycho results list`)")
        out = _run_dict(row)
        out["metrics"] = _metrics_of(conn, [run_id]).get(run_id, {})
        comparison = None
        if out["comparison_id"] is not None:
            columns = [c for c in t.comparisons.c if c.name != "provenance"]
            found = conn.execute(sa.select(*columns).where(t.comparisons.c.id == out["comparison_id"])).first()
            comparison = _run_dict(found) if found is not None else None
    out["comparison"] = comparison
    return out


#: diff sections: name -> the run columns (or dict columns, compared key by key) in it.
DIFF_SECTIONS = {
    "options": ("options",),
    "training": ("train_config", "seed", "gridsize"),
    "versions": ("plugin", "plugin_version", "framework", "factory", "ptycho_version", "git_sha"),
    "data": ("data_fingerprint", "data_description", "split"),
    "outcome": ("status", "reason", "device", "gpu"),
}


def diff(store, a: str, b: str) -> dict:
    """What differs between two runs: {"a", "b", section: [{"key", "a", "b"(, "delta")}]}."""
    left, right = show(store, a), show(store, b)
    out: dict = {"a": left["id"], "b": right["id"]}
    for section, keys in DIFF_SECTIONS.items():
        items = []
        for key in keys:
            x, y = left.get(key), right.get(key)
            if isinstance(x, dict) or isinstance(y, dict):
                items += _dict_diff(key, x or {}, y or {})
            elif x != y:
                items.append({"key": key, "a": x, "b": y})
        out[section] = items
    metrics = []
    for key in sorted(set(left["metrics"]) | set(right["metrics"])):
        x, y = left["metrics"].get(key), right["metrics"].get(key)
        if x != y:
            delta = y - x if x is not None and y is not None else None
            metrics.append({"key": key, "a": x, "b": y, "delta": delta})
    out["metrics"] = metrics
    return out


def _dict_diff(prefix: str, x: dict, y: dict) -> list[dict]:
    return [
        {"key": f"{prefix}.{k}", "a": x.get(k), "b": y.get(k)}
        for k in sorted(set(x) | set(y), key=str)
        if x.get(k) != y.get(k)
    ]


def export_rows(store, filters: Filters | None = None) -> tuple[list[str], list[dict]]:
    """(columns, rows): every run (oldest first) as run columns then one column per metric."""
    import sqlalchemy as sa  # lazy: `ptycho results --help` must not import SQLAlchemy

    r = tables().runs
    skip = {"hardware", "split", "recorded"}

    def work():
        with store.transaction() as conn:
            clauses = (filters or Filters()).clauses()
            query = sa.select(*[c for c in r.c if c.name not in skip]).where(*clauses)
            rows = [_run_dict(row) for row in conn.execute(query.order_by(r.c.id))]
            metrics = _metrics_of(conn, sa.select(r.c.id).where(*clauses))
        return rows, metrics

    rows, metrics = store.guarded(work)
    names = sorted({name for values in metrics.values() for name in values})
    columns = [c.name for c in r.c if c.name not in skip] + names
    return columns, [{**row, **metrics.get(row["id"], {})} for row in rows]
