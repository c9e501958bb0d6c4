"""The metric registry is the one list of names: the CSV header is pinned to it, every consumer
iterates over it, and a metric added to it (plus its computation) shows up everywhere."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from ptycho_core import metric_registry as registry
from ptycho_core import report, rundir
from ptycho_core.plugins import PluginHost
from ptycho_core.testing import dummies

#: metrics.csv's header of one seed, pinned: a change here changes every user's CSV.
CSV_HEADER = (
    "generator,status,amp_ssim,amp_psnr,amp_mae,amp_rmse,phase_ssim,phase_psnr,phase_mae,phase_rmse,"
    "frc_amp_px,frc_phase_px,covered_fraction,twin_share,data_error,parameters,train_seconds,"
    "reconstruct_seconds,inference_patterns_per_s,peak_rss_mib,peak_gpu_mib,frc_amp_cpp,frc_phase_cpp,"
    "data_scale,shift_y,shift_x,ramp_y,ramp_x,epochs_run,final_loss,best_val_loss,region_pixels,"
    "scored_fraction,frc_side,frc_too_small,area_too_small,framework,kind,plugin,version,runs,ok_runs,reused"
)


def test_csv_header_is_pinned(tmp_path):
    path = report.write_csv([], tmp_path / "metrics.csv")
    assert path.read_text().strip() == CSV_HEADER
    two = report.csv_columns([], seeds=2)
    assert two[:4] == ["generator", "status", "amp_ssim", "amp_ssim_std"] and two[-7:] == list(report.ROW_FIELDS)


def test_registry_is_consistent():
    keys = registry.keys()
    assert len(set(keys)) == len(keys) and registry.HEADLINE in keys
    table = [m.key for m in registry.METRICS if m.table]
    assert list(keys[: len(table)]) == table  # table columns come first, in CSV order
    coverage = set(registry.keys("coverage"))
    assert {m.flag for m in registry.METRICS if m.flag} == {"frc_too_small", "area_too_small"} <= coverage
    assert registry.better("frc_amp_px") == "min" and registry.better("parameters") == "max"
    assert registry.metric("amp_psnr").unit == "dB"
    with pytest.raises(KeyError, match="no metric 'nope'"):
        registry.metric("nope")
    with pytest.raises(ValueError, match="better must be"):
        registry.Metric("x", "x", better="up")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.0, True), (3, True), (np.float32(0.5), True), (True, False), ("1.0", False), (None, False), (np.nan, False)],
)
def test_finite_is_one_rule(value, expected):
    assert registry.finite(value) is expected


def test_scoring_sets_every_scored_key_and_records_round_trip(tiny_pair):
    from ptycho_core import pipeline

    _, test = tiny_pair
    result = pipeline.score_whole_object(test.object, test)
    assert set(registry.keys(registry.SCORED)) <= set(result.metrics)
    record = rundir.RunRecord(name="r", hash="h", metrics={"train_seconds": 2.0, "peak_rss_mib": 9.0})
    flat = record.to_dict()
    assert flat["train_seconds"] == 2.0 and "metrics" not in flat  # run.json keeps top-level keys
    assert rundir.RunRecord.from_dict(flat) == record
    row = rundir.Row(generator="g", run="r", metrics={"amp_ssim": 0.5})
    row.add_costs(record)
    assert rundir.Row.from_dict(row.to_dict()) == row and row.metrics["peak_rss_mib"] == 9.0


FAKE = registry.Metric(
    "fake_sharpness", "fake sharp", "px", "max", "{:.3f}", "a metric added by a test", table=True, terminal=True,
    listed=True,
)  # fmt: skip


@pytest.fixture
def fake_metric(monkeypatch):
    """One more registry entry and its computation (a wrapped `metrics.score`)."""
    from ptycho_core import metrics

    monkeypatch.setattr(registry, "METRICS", (*registry.METRICS, FAKE))
    original = metrics.score

    def score(*args, **kwargs):
        scores = original(*args, **kwargs)
        if "fake_sharpness" not in scores.values:
            raise AssertionError("score() did not set the new key from the registry")
        scores.values["fake_sharpness"] = 0.625
        return scores

    monkeypatch.setattr(metrics, "score", score)
    return FAKE


def test_a_new_metric_appears_everywhere(invoke, fake_metric, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # room for every column of the terminal table
    host = PluginHost(load="")
    host.register(dummies, "ptycho-dummies")
    db, out = str(tmp_path / "r.db"), tmp_path / "cmp"
    sim = ["--sim", "patch_size=16", "--sim", "object_size=48", "--sim", "step=4", "--sim", "train_objects=1"]
    ran = invoke("compare", "-g", "dummy_intensity", *sim, "--epochs", "1", "--out", out, "--db", db, host=host)
    assert ran.exit_code == 0, ran.output
    assert "fake sharp" in ran.output and "0.625" in ran.output  # the terminal table
    with open(out / "metrics.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert float(row["fake_sharpness"]) == 0.625
    payload = json.loads((out / "metrics.json").read_text())
    assert payload["rows"][0]["fake_sharpness"] == 0.625 and payload["runs"][0]["fake_sharpness"] == 0.625
    assert {"key": "fake_sharpness", "label": "fake sharp", "unit": "px", "better": "max"}.items() <= next(
        c for c in payload["columns"] if c["key"] == "fake_sharpness"
    ).items()
    page = (out / "report.html").read_text()
    assert '<th title="a metric added by a test">fake sharp</th>' in page and "<td>0.625</td>" in page
    listed = invoke("results", "list", "--db", db)
    assert listed.exit_code == 0 and "fake_sharpness" in listed.output, listed.output
    board = invoke("results", "leaderboard", "--db", db, "--metric", "fake_sharpness", "--json")
    assert json.loads(board.stdout)["order"] == "max"  # its direction, from the registry
    assert json.loads(board.stdout)["datasets"][0]["rows"][0]["value"] == 0.625
    exported = invoke("results", "export", "--db", db)
    assert exported.exit_code == 0, exported.output
    (line,) = list(csv.DictReader(exported.stdout.splitlines()))
    assert float(line["fake_sharpness"]) == 0.625


def test_results_depends_only_on_run_records_and_the_registry():
    """results/ imports rundir, the registry and small leaves, never the harness or the report
    (function-level imports included)."""
    import ast
    from pathlib import Path

    import ptycho_core.results

    allowed = {"ptycho_core", "ptycho_core.rundir", "ptycho_core.metric_registry", "ptycho_core.host"}
    allowed |= {"ptycho_core.errors"}
    found = set()
    for path in Path(ptycho_core.results.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ptycho_core"):
                found |= (
                    {node.module} if node.module != "ptycho_core" else {f"ptycho_core.{a.name}" for a in node.names}
                )
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("ptycho_core")}
    outside = {m for m in found if not m.startswith("ptycho_core.results") and m not in allowed}
    assert outside <= {"ptycho_core.__version__"}, outside
