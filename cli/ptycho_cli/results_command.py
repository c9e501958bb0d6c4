"""`ptycho results ...`: query the results database (thin: parse, call ptycho_core.results, print)."""

from __future__ import annotations

import functools
import json

import click

from ptycho_cli.listing import _echo_json, _table
from ptycho_core import metric_registry

DB_HELP = "Results database: a SQLAlchemy URL or a SQLite file. Default: $PTYCHO_DB, else results.db in the user's data folder."


def db_option(func):
    """`--db URL` (shared by every command that opens the results database)."""
    return click.option("--db", default=None, metavar="URL", help=DB_HELP)(func)


def json_option(func):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)


def filter_options(func):
    """The filters of list / leaderboard / export / html, gathered into one `filters` argument."""
    options = [
        click.option("--generator", "-g", default=None, metavar="A,B", help="Only these generators."),
        click.option("--plugin", default=None, metavar="DIST", help="Only generators of these plugin distributions."),
        click.option("--version", "plugin_version", default=None, metavar="V", help="Only these plugin versions."),
        click.option("--since", default=None, metavar="DATE", help="Runs started on or after DATE (YYYY-MM-DD)."),
        click.option("--until", default=None, metavar="DATE", help="Runs started on or before DATE (YYYY-MM-DD)."),
        click.option("--gridsize", default=None, type=click.IntRange(1), help="Only this gridsize."),
        click.option("--dataset", default=None, metavar="FP", help="Only this data fingerprint (or its prefix)."),
        click.option(
            "--command", default=None, type=click.Choice(["compare", "train", "reconstruct"]), help="Only runs of."
        ),
    ]

    @functools.wraps(func)
    def wrapper(*args, generator, plugin, plugin_version, since, until, gridsize, dataset, command, **kwargs):
        from ptycho_core.results.queries import Filters

        filters = Filters(generator, plugin, plugin_version, since, until, gridsize, dataset, command)
        return func(*args, filters=filters, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def _ask(db, question, *args):
    """(answer, where): `question(store, *args)` on the database named by --db / PTYCHO_DB / default."""
    from ptycho_core.results.store import Store

    with Store.open(db) as store:
        return question(store, *args), store.where


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{value:.0f}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@click.group()
def results():
    """Every recorded comparison and run: list, rank, inspect, compare, export, import, publish.

    \b
    ptycho compare, train and reconstruct record each finished run in the results database
    (SQLite in the user's data folder by default; --db URL or PTYCHO_DB for another file or
    a shared PostgreSQL server). The run folders stay the source of truth.

    \b
    Examples:
      ptycho results list
      ptycho results leaderboard --metric phase_ssim --gridsize 2
      ptycho results show 12
      ptycho results diff 12 15
      ptycho results import old-comparisons/
      ptycho results html --out leaderboard.html
    """


@results.command("list")
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(0), help="Newest N runs (0: all).")
@filter_options
@db_option
@json_option
def list_(limit, filters, db, as_json):
    """The newest recorded runs."""
    from ptycho_core.results import queries

    runs, where = _ask(db, queries.list_runs, filters, limit)
    if as_json:
        return _echo_json(runs)
    if not runs:
        return click.echo(f"no runs recorded in {where}")
    shown = queries.listed()
    headers = ["id", "date", "command", "generator", "version", "grid", "status", *shown, "data"]
    rows = [
        [r["id"], r["started"] or "", r["command"], r["generator"], r["plugin_version"] or "", _fmt(r["gridsize"])]
        + [r["status"], *(_fmt(r["metrics"].get(m)) for m in shown)]
        + [(r["data_description"] or "")[:50]]
        for r in runs
    ]
    click.echo(_table(headers, rows))


@results.command()
@click.option(
    "--metric",
    "-m",
    default=metric_registry.HEADLINE,
    show_default=True,
    help="Rank by this metric (any recorded one).",
)
@click.option("--order", type=click.Choice(["max", "min"]), default=None, help="Higher or lower is better.")
@filter_options
@db_option
@json_option
def leaderboard(metric, order, filters, db, as_json):
    """The best successful run per generator on each dataset, ranked by a metric."""
    from ptycho_core.results import queries

    board, where = _ask(db, queries.leaderboard, metric, filters, order)
    if as_json:
        return _echo_json(board)
    if not board["datasets"]:
        return click.echo(f"no successful run with {metric} in {where}")
    others = [m for m in queries.listed() if m != metric]
    for group in board["datasets"]:
        click.echo(f"{group['description']} (data {group['fingerprint'][:12]})")
        headers = ["#", "generator", "version", metric, *others, "grid", "run", "date"]
        rows = [
            [k, r["generator"], r["plugin_version"] or "", _fmt(r["value"])]
            + [_fmt(r["metrics"].get(m)) for m in others]
            + [_fmt(r["gridsize"]), r["id"], r["started"] or ""]
            for k, r in enumerate(group["rows"], start=1)
        ]
        click.echo(_table(headers, rows) + "\n")


@results.command()
@click.argument("run")
@db_option
@json_option
def show(run, db, as_json):
    """Everything recorded about RUN (an id from `ptycho results list`, or a run folder)."""
    from ptycho_core.results import queries

    record, _ = _ask(db, queries.show, run)
    if as_json:
        return _echo_json(record)
    metrics, comparison = record.pop("metrics"), record.pop("comparison")
    rows = [[key, _fmt(value)] for key, value in record.items() if value not in (None, "", {})]
    click.echo(_table(["field", "value"], rows))
    click.echo("\n" + _table(["metric", "value"], [[k, _fmt(v)] for k, v in sorted(metrics.items())]))
    if comparison:
        click.echo(f"\ncomparison {comparison['id']}: {comparison['folder']} ({comparison['status']})")


@results.command()
@click.argument("run_a")
@click.argument("run_b")
@db_option
@json_option
def diff(run_a, run_b, db, as_json):
    """What differs between two runs: options, versions, data, metrics."""
    from ptycho_core.results import queries

    found, _ = _ask(db, queries.diff, run_a, run_b)
    if as_json:
        return _echo_json(found)
    a, b = found.pop("a"), found.pop("b")
    for section, items in found.items():
        if not items:
            continue
        click.echo(f"{section}:")
        rows = [[i["key"], _fmt(i["a"]), _fmt(i["b"])] + ([_fmt(i["delta"])] if "delta" in i else []) for i in items]
        headers = ["", f"run {a}", f"run {b}"] + (["b - a"] if section == "metrics" else [])
        click.echo(_table(headers, rows) + "\n")
    if not any(found.values()):
        click.echo(f"runs {a} and {b} do not differ")


@results.command()
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV (the default when --json is not given).")
@click.option(
    "--out", "out_path", default=None, type=click.Path(dir_okay=False), help="Write to FILE (default: stdout)."
)
@filter_options
@db_option
@json_option
def export(as_csv, out_path, filters, db, as_json):
    """Every recorded run, one row each (run fields, then one column per metric)."""
    import csv
    import io

    from ptycho_core import rundir
    from ptycho_core.results import queries

    (columns, rows), _ = _ask(db, queries.export_rows, filters)
    if as_json:
        text = rundir.dumps(rows)
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()})
        text = buffer.getvalue()
    if out_path:
        rundir.write_text(out_path, text)
        click.echo(f"{len(rows)} runs written to {out_path}", err=True)
    else:
        click.echo(text, nl=False)


@results.command("import")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@db_option
@json_option
def import_(folders, db, as_json):
    """Index comparison folders made before (every folder under FOLDERS with a metrics.json)."""
    from ptycho_core.results.record import import_folders

    (imported, problems), where = _ask(db, import_folders, folders)
    if as_json:
        return _echo_json({"imported": imported, "problems": problems, "db": where})
    for item in imported:
        click.echo(f"comparison {item['comparison']}: {item['runs']} runs from {item['folder']}")
    for item in problems:
        click.echo(f"skipped {item['folder']}: {item['reason']}", err=True)
    click.echo(f"{len(imported)} comparison(s) imported into {where}")


@results.command()
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="The page to write.")
@click.option("--metric", "-m", default=metric_registry.HEADLINE, show_default=True, help="Rank by this metric.")
@click.option("--order", type=click.Choice(["max", "min"]), default=None, help="Higher or lower is better.")
@filter_options
@db_option
@json_option
def html(out_path, metric, order, filters, db, as_json):
    """Write the leaderboard as one self-contained, sortable HTML page linking to each report."""
    from ptycho_core.results import html as page
    from ptycho_core.results import queries

    board, where = _ask(db, queries.leaderboard, metric, filters, order)
    path = page.write_page(board, out_path, where)
    rows = sum(len(g["rows"]) for g in board["datasets"])
    if as_json:
        return _echo_json({"out": str(path), "datasets": len(board["datasets"]), "rows": rows})
    click.echo(f"leaderboard of {rows} generator(s) on {len(board['datasets'])} dataset(s) written to {path}")
