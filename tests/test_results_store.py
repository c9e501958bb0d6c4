"""The results store on SQLite and on a real PostgreSQL server (started here on a loopback port):
what a comparison records, the leaderboard and its filters, show / diff / export, import,
migrations, and the faults: a newer schema, a corrupt file, two writers at once, a writer killed
mid-transaction."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from postgres_server import postgres_server, server_bin

from ptycho_core.errors import PtychoError
from ptycho_core.metric_registry import finite
from ptycho_core.results import entries, queries
from ptycho_core.results.record import import_folders, write
from ptycho_core.results.schema import SCHEMA_VERSION, tables
from ptycho_core.results.store import Store, StoreError
from ptycho_core.testing.results import EPOCH, synthetic_comparison


def _missing(what: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing (make install installs it)")
    pytest.skip(f"{what} is missing (make install installs it)")


@pytest.fixture(scope="module")
def postgres_url():
    bin_dir = server_bin()
    if bin_dir is None:
        _missing("the PostgreSQL server (Debian package postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("the psycopg driver (pip install -e '.[postgres]')")
    with postgres_server(bin_dir) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """An empty, migrated store on each backend (PostgreSQL: its tables dropped afterwards)."""
    if request.param == "sqlite":
        url = str(tmp_path / "results.db")
    else:
        url = request.getfixturevalue("postgres_url")
    with Store.open(url) as opened:
        yield opened
        if request.param == "postgresql":
            with opened.transaction() as conn:
                for table in ("metrics", "runs", "comparisons", "schema_version"):
                    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table} CASCADE")


def _count(store, table) -> int:
    import sqlalchemy as sa

    with store.transaction() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(getattr(tables(), table))).scalar()


def test_a_comparison_records_every_run_with_its_provenance(dummy_comparison):
    folder, result, db = dummy_comparison
    with Store.open(db) as store:
        runs = {r["generator"]: r for r in queries.list_runs(store, limit=0)}
        assert set(runs) == {"dummy_intensity", "dummy_supervised", "dummy_raising"}
        ok = queries.show(store, str(runs["dummy_intensity"]["id"]))
        failed = queries.show(store, str(folder / "runs" / "dummy_raising"))
    assert ok["plugin"] == "ptycho-dummies" and ok["framework"] == "numpy" and ok["command"] == "compare"
    assert ok["options"] == {"init_gain": 0.5, "rate": 0.5, "phase_per_amplitude": 0.5}
    assert ok["data_fingerprint"] == result.provenance["data"]["fingerprint"] and ok["gridsize"] == 2
    assert ok["seed"] == 0 and ok["epochs"] == 1 and ok["device"] == "auto"
    assert ok["precision"] is None  # a numpy generator has no precision: it is a torch engine setting
    assert ok["ptycho_version"] == result.provenance["ptycho"] and ok["git_sha"] == result.provenance["git_sha"]
    assert ok["folder"] == str((folder / "runs" / "dummy_intensity").resolve()) and ok["started"]
    row = next(r for r in result.runs if r.generator == "dummy_intensity")
    assert ok["metrics"]["amp_ssim"] == pytest.approx(row.metrics["amp_ssim"])
    assert ok["metrics"]["train_seconds"] == pytest.approx(row.metrics["train_seconds"])
    recorded = {k for k, v in row.metrics.items() if finite(v)}  # None (no GPU) and NaN are not stored
    assert ok["metrics"]["peak_rss_mib"] > 0 and recorded <= set(ok["metrics"])
    assert "reconstruct_seconds" in ok["metrics"]  # every recorded cost, so the database ranks iterative rows by time
    assert failed["status"] == "failed" and "dummy failure in fit" in failed["reason"]
    assert ok["comparison"]["folder"] == str(folder.resolve()) and ok["comparison"]["status"] == "failed"


def test_import_indexes_an_old_folder_once(store, dummy_comparison):
    folder, result, _ = dummy_comparison
    imported, problems = import_folders(store, [folder.parent])
    assert problems == [] and [i["runs"] for i in imported] == [3]
    import_folders(store, [folder])  # the same comparison again replaces it
    assert _count(store, "comparisons") == 1 and _count(store, "runs") == 3
    board = queries.leaderboard(store, "amp_ssim")
    (group,) = board["datasets"]
    scored = sorted((r for r in result.rows if r["status"] == "ok"), key=lambda r: -r["amp_ssim"])
    assert [r["generator"] for r in group["rows"]] == [r["generator"] for r in scored]
    assert group["rows"][0]["report"] == str(folder.resolve() / "report.html")


def test_a_folder_without_a_comparison_is_reported_not_imported(store, tmp_path):
    (tmp_path / "x" / "runs").mkdir(parents=True)
    (tmp_path / "x" / "metrics.json").write_text('{"something": 1}')
    imported, problems = import_folders(store, [tmp_path])
    assert imported == [] and "not a comparison's metrics.json" in problems[0]["reason"]


def test_leaderboard_best_per_generator_sorted_and_filtered(store):
    for index in range(12):
        write(store, synthetic_comparison(index, runs=5))
    export_columns, rows = queries.export_rows(store)
    ok = [r for r in rows if r["status"] == "ok"]
    board = queries.leaderboard(store, "amp_ssim")
    assert {g["fingerprint"] for g in board["datasets"]} == {r["data_fingerprint"] for r in ok}
    for group in board["datasets"]:
        mine = [r for r in ok if r["data_fingerprint"] == group["fingerprint"]]
        expected = {}
        for r in mine:
            expected[r["generator"]] = max(expected.get(r["generator"], -1), r["amp_ssim"])
        assert {r["generator"]: r["value"] for r in group["rows"]} == pytest.approx(expected)
        assert [r["value"] for r in group["rows"]] == sorted(expected.values(), reverse=True)
    lowest = queries.leaderboard(store, "data_error")  # lower is better: from the report's columns
    assert lowest["order"] == "min"
    group = lowest["datasets"][0]
    assert group["rows"][0]["value"] == min(
        r["data_error"] for r in ok if r["data_fingerprint"] == group["fingerprint"]
    )
    assert "amp_ssim" in export_columns and len(rows) == 60


def test_leaderboard_filters(store):
    for index in range(12):
        write(store, synthetic_comparison(index, runs=5))
    only = queries.Filters(generator="fno,pinn_tf", gridsize=2, version="0.1.0")
    board = queries.leaderboard(store, "phase_ssim", only)
    shown = [r for g in board["datasets"] for r in g["rows"]]
    assert shown and {r["generator"] for r in shown} <= {"fno", "pinn_tf"}
    assert {r["gridsize"] for r in shown} == {2} and {r["plugin_version"] for r in shown} == {"0.1.0"}
    day = time.strftime("%Y-%m-%d", time.localtime(EPOCH + 5 * 86400 + 3600))
    dated = queries.list_runs(store, queries.Filters(since=day, until=day), limit=0)
    assert dated and all(r["started"].startswith(day) for r in dated)
    fp = queries.Filters(dataset="bbbb")
    assert {g["fingerprint"][0] for g in queries.leaderboard(store, "amp_ssim", fp)["datasets"]} == {"b"}
    with pytest.raises(PtychoError, match="--since"):
        queries.list_runs(store, queries.Filters(since="last tuesday"))


def test_diff_names_what_differs(store):
    write(store, synthetic_comparison(0, runs=2))
    a, b = (r["id"] for r in queries.list_runs(store, limit=0)[::-1])
    found = queries.diff(store, str(a), str(b))
    assert {i["key"] for i in found["versions"]} >= {"plugin"}
    amp = next(i for i in found["metrics"] if i["key"] == "amp_ssim")
    assert amp["delta"] == pytest.approx(amp["b"] - amp["a"])
    assert queries.diff(store, str(a), str(a))["metrics"] == []
    with pytest.raises(PtychoError, match="no such run"):
        queries.show(store, "999999")


def test_a_writer_killed_mid_transaction_leaves_no_half_record(store):
    """The child inserts a comparison and some of its runs, then SIGKILLs itself mid-transaction."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from ptycho_core.results.record import write
        from ptycho_core.results.store import Store
        from ptycho_core.testing.results import synthetic_comparison

        class Dying(dict):
            def items(self):
                os.kill(os.getpid(), signal.SIGKILL)

        entry = synthetic_comparison(1, runs=4)
        entry.runs[2].metrics = Dying(entry.runs[2].metrics)
        write(Store.open({store.url!r}), entry)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    assert _count(store, "comparisons") == 0 and _count(store, "runs") == 0 and _count(store, "metrics") == 0
    write(store, synthetic_comparison(2, runs=3))  # the database is still usable
    assert _count(store, "runs") == 3


WRITER = """
import sys, time
from pathlib import Path
from ptycho_core.results.record import write
from ptycho_core.results.store import Store
from ptycho_core.testing.results import synthetic_comparison

url, seed, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
while not go.exists():
    time.sleep(0.01)
for index in range(15):
    with Store.open(url) as store:
        write(store, synthetic_comparison(index, runs=3, seed=seed))
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_processes_recording_at_once_both_land(backend, tmp_path, request):
    """Two writers start together on a database that does not exist yet (both migrate it)."""
    url = str(tmp_path / "shared.db") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    go = tmp_path / "go"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, str(seed), str(go)], stderr=subprocess.PIPE)
        for seed in (1, 2)
    ]
    time.sleep(0.5)
    go.touch()
    for proc in writers:
        assert proc.wait(timeout=240) == 0, proc.stderr.read().decode()
    with Store.open(url) as store:
        assert _count(store, "comparisons") == 30 and _count(store, "runs") == 90
        assert store.schema_version() == SCHEMA_VERSION
        if backend == "postgresql":
            with store.transaction() as conn:
                for table in ("metrics", "runs", "comparisons", "schema_version"):
                    conn.exec_driver_sql(f"DROP TABLE {table} CASCADE")


def test_an_old_schema_is_migrated_forward_keeping_its_records(tmp_path, monkeypatch):
    from ptycho_core.results import schema

    url = str(tmp_path / "old.db")
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 1)
    with Store.open(url) as old:
        write(old, synthetic_comparison(0, runs=2))
        assert old.schema_version() == 1
    monkeypatch.undo()
    with Store.open(url) as store:
        assert store.schema_version() == SCHEMA_VERSION == 2
        assert _count(store, "runs") == 2
        import sqlalchemy as sa

        with store.transaction() as conn:
            names = {ix["name"] for ix in sa.inspect(conn).get_indexes("metrics")}
        assert "ix_metrics_name_run" in names


def test_a_newer_schema_is_refused_in_one_line(tmp_path):
    url = str(tmp_path / "new.db")
    with Store.open(url) as store, store.transaction() as conn:
        conn.execute(tables().version.insert().values(version=SCHEMA_VERSION + 1, description="future", applied=0.0))
    with pytest.raises(StoreError) as info:
        Store.open(url)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "new.db")) and "newer" in message and "upgrade ptycho" in message
    assert "\n" not in message


def test_a_corrupt_or_foreign_file_is_refused_in_one_line(tmp_path):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(StoreError) as info:
        Store.open(corrupt)
    assert str(info.value).startswith(str(corrupt)) and "move it aside" in str(info.value)
    import sqlite3

    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StoreError, match="not a ptycho results database"):
        Store.open(foreign)


def test_the_default_database_is_in_the_user_data_folder(monkeypatch, tmp_path):
    from ptycho_core.results.store import resolve_url

    monkeypatch.delenv("PTYCHO_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert resolve_url() == f"sqlite:///{tmp_path / 'data' / 'ptycho' / 'results.db'}"
    monkeypatch.setenv("PTYCHO_DB", "postgresql+psycopg://u@h/db")
    assert resolve_url() == "postgresql+psycopg://u@h/db" and resolve_url("x.db").endswith("/x.db")


def test_numbers_keep_only_finite_values():
    assert entries.numbers({"a": 1, "b": float("nan"), "c": None, "d": "x", "e": True}) == {"a": 1.0, "e": 1.0}
