"""`ptycho results` as a user runs it: compare, train and reconstruct record their runs; list,
leaderboard, show, diff, export, import and html answer (all with --json); a broken database is a
warning for the commands that record and a one-line error, exit 2, for the queries."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from ptycho_core.plugins import PluginHost
from ptycho_core.testing import dummies


@pytest.fixture
def dummy_host():
    host = PluginHost(load="")
    host.register(dummies, "ptycho-dummies")
    return host


@pytest.fixture
def data_files(invoke, tmp_path):
    """Tiny train and test files, written the way a user writes them (`ptycho simulate`); seed 7, so
    that they are not the dummy comparison's data (SimConfig(step=4) and --step 4 are the same data)."""
    made = invoke(
        "simulate", "--out", tmp_path / "train.npz", "--test-out", tmp_path / "test.npz", "--patch-size", 16,
        "--object-size", 48, "--step", 4, "--sim", "train_objects=1", "--seed", 7,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    return tmp_path


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_compare_records_and_every_query_answers(invoke, dummy_host, data_files, dummy_comparison, tmp_path):
    db = str(tmp_path / "cli.db")
    data = ["--data", data_files / "train.npz", "--test-data", data_files / "test.npz"]
    out = tmp_path / "cmp"
    ran = invoke("compare", "-g", "dummy_intensity", *data, "--epochs", "1", "--out", out, "--db", db, host=dummy_host)
    assert ran.exit_code == 0, ran.output
    assert "recorded as comparison 1 in" in ran.output and db in ran.output
    runs = _json(invoke("results", "list", "--db", db, "--json"))
    assert [(r["generator"], r["command"], r["status"]) for r in runs] == [("dummy_intensity", "compare", "ok")]
    imported = _json(invoke("results", "import", dummy_comparison[0], "--db", db, "--json"))
    assert [i["runs"] for i in imported["imported"]] == [3]
    board = _json(invoke("results", "leaderboard", "--db", db, "--metric", "phase_ssim", "--json"))
    # two datasets: the files written here and the dummy comparison's in-memory simulation
    assert board["order"] == "max" and len(board["datasets"]) == 2
    by_data = sorted(sorted(r["generator"] for r in g["rows"]) for g in board["datasets"])
    assert by_data == [["dummy_intensity"], ["dummy_intensity", "dummy_supervised"]]
    only = _json(invoke("results", "leaderboard", "--db", db, "-g", "dummy_supervised", "--gridsize", "2", "--json"))
    assert [r["generator"] for g in only["datasets"] for r in g["rows"]] == ["dummy_supervised"]
    shown = _json(invoke("results", "show", "1", "--db", db, "--json"))
    assert shown["folder"] == str((out / "runs" / "dummy_intensity").resolve())
    assert shown["comparison"]["folder"] == str(out.resolve())
    diff = _json(invoke("results", "diff", "1", "2", "--db", db, "--json"))
    assert {i["key"] for i in diff["data"]} >= {"data_fingerprint", "data_description"} and diff["metrics"]
    assert diff["outcome"] == [] and diff["options"] == []  # same generator, same options
    text = invoke("results", "diff", "1", "2", "--db", db)
    assert "data_fingerprint" in text.output and "b - a" in text.output


def test_export_html_and_text_listings(invoke, dummy_comparison, tmp_path):
    db = str(tmp_path / "cli.db")
    assert invoke("results", "import", dummy_comparison[0].parent, "--db", db).exit_code == 0
    exported = invoke("results", "export", "--csv", "--db", db)
    lines = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert exported.exit_code == 0 and [line["generator"] for line in lines] == [
        "dummy_intensity",
        "dummy_supervised",
        "dummy_raising",
    ]
    assert float(lines[0]["amp_ssim"]) > 0 and lines[2]["status"] == "failed" and lines[2]["amp_ssim"] == ""
    as_json = _json(invoke("results", "export", "--json", "--db", db))
    assert len(as_json) == 3
    page = tmp_path / "site" / "leaderboard.html"
    written = _json(invoke("results", "html", "--out", page, "--db", db, "--json"))
    assert written["rows"] == 2 and page.is_file()
    hrefs = re.findall(r'href="([^"]+)"', page.read_text())
    assert len(hrefs) == 2 and {(page.parent / h).resolve() for h in hrefs} == {
        (dummy_comparison[0] / "report.html").resolve()
    }
    listing = invoke("results", "list", "--db", db)
    assert "dummy_raising" in listing.output and "failed" in listing.output
    board = invoke("results", "leaderboard", "--db", db, "--metric", "data_error")
    assert board.output.index("dummy_intensity") < board.output.index("dummy_supervised")


def test_train_and_reconstruct_record_their_runs(invoke, dummy_host, data_files, tmp_path):
    db = str(tmp_path / "cli.db")
    model, recon = tmp_path / "model", tmp_path / "recon.npz"
    trained = invoke(
        "train", "-g", "dummy_intensity", "--data", data_files / "train.npz", "--out", model,
        "--epochs", "1", "--gridsize", "2", "-o", "rate=0.25", "--db", db, host=dummy_host,
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    done = invoke(
        "reconstruct", "--model", model, "--data", data_files / "test.npz", "--out", recon, "--db", db, host=dummy_host
    )
    assert done.exit_code == 0, done.output
    runs = {r["command"]: r for r in _json(invoke("results", "list", "--db", db, "--json"))}
    assert set(runs) == {"train", "reconstruct"}
    train = _json(invoke("results", "show", str(runs["train"]["id"]), "--db", db, "--json"))
    assert train["options"]["rate"] == 0.25 and train["gridsize"] == 2 and train["epochs"] == 1
    assert train["folder"] == str(model.resolve()) and train["metrics"]["epochs_run"] == 1
    assert train["plugin"] == "ptycho-dummies" and train["data_fingerprint"] and train["ptycho_version"]
    again = _json(invoke("results", "show", str(recon), "--db", db, "--json"))
    assert again["command"] == "reconstruct" and again["generator"] == "dummy_intensity"
    assert 0 < again["metrics"]["amp_ssim"] <= 1 and again["options"]["rate"] == 0.25
    assert again["data_fingerprint"] != train["data_fingerprint"]


def test_a_failed_training_is_recorded_with_its_reason(invoke, dummy_host, data_files, tmp_path):
    db = str(tmp_path / "cli.db")
    args = ["train", "-g", "dummy_raising", "--data", data_files / "train.npz", "--out", tmp_path / "m", "--db", db]
    failed = invoke(*args, "--epochs", "1", host=dummy_host)
    assert failed.exit_code != 0 and isinstance(failed.exception, RuntimeError)
    (run,) = _json(invoke("results", "list", "--db", db, "--json"))
    assert (run["command"], run["generator"], run["status"]) == ("train", "dummy_raising", "failed")
    assert run["reason"] == "RuntimeError: dummy failure in fit"


def test_a_broken_database_is_a_warning_for_compare(invoke, dummy_host, tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"garbage" * 1000)
    out = tmp_path / "cmp"
    sim = ["--sim", "object_size=48", "--sim", "patch_size=16", "--sim", "step=4", "--sim", "train_objects=1"]
    ran = invoke("compare", "-g", "dummy_intensity", *sim, "--epochs", "1", "--out", out, "--db", bad, host=dummy_host)
    assert ran.exit_code == 0, ran.output
    assert "warning: not recorded in the results database" in ran.output and str(bad) in ran.output
    assert (out / "report.html").is_file() and (out / "metrics.json").is_file()


@pytest.mark.parametrize("command", [["list"], ["leaderboard"], ["show", "1"], ["export", "--csv"]])
def test_query_errors_are_one_line(invoke, one_line_error, tmp_path, command):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"garbage" * 1000)
    line = one_line_error(invoke("results", *command, "--db", bad))
    assert line.startswith(f"error: {bad}: not a readable SQLite database") and "--db" in line


def test_newer_schema_and_unknown_run_are_one_line(invoke, one_line_error, tmp_path, monkeypatch):
    from ptycho_core.results.schema import SCHEMA_VERSION, tables
    from ptycho_core.results.store import Store

    db = tmp_path / "new.db"
    with Store.open(db) as store, store.transaction() as conn:
        conn.execute(tables().version.insert().values(version=SCHEMA_VERSION + 5, description="x", applied=0.0))
    monkeypatch.setenv("PTYCHO_DB", str(db))  # the environment names the database
    line = one_line_error(invoke("results", "list"))
    assert str(db) in line and f"schema version {SCHEMA_VERSION + 5}" in line
    monkeypatch.setenv("PTYCHO_DB", str(tmp_path / "empty.db"))
    assert "no such run" in one_line_error(invoke("results", "show", "7"))
    assert "not a date" in one_line_error(invoke("results", "list", "--since", "yesterday"))
