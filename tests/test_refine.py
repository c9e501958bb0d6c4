"""Refined rows (`ptycho compare --refine`, `ptycho reconstruct --model M --refine`) and the quality
against seconds of every row, with the numpy dummies: `dummy_intensity` (learned, flat patches)
refined by `dummy_iterative` (full-batch PIE, `warm_start`). The table, the run folders, the
times of both parts, resume, a failed learned row, the refusal of an engine without warm start,
the time-to-quality column and figure."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ptycho_core import compare, pipeline, quality_time, refine, stitch
from ptycho_core.errors import UsageError
from ptycho_core.hookspecs import hookimpl
from ptycho_core.plugins import PluginHost
from ptycho_core.registry import GeneratorSpec, Option
from ptycho_core.simulate import SimConfig, simulate_pair
from ptycho_core.testing import dummies

TINY = SimConfig(train_objects=1, patch_size=16, object_size=48, step=4)
OPTIONS = {"dummy_iterative": {"iterations": "15"}}


class ColdSolver:
    """An iterative generator registered without warm_start (it cannot take a start)."""

    @hookimpl
    def ptycho_register_generators(self, register):
        register(
            GeneratorSpec(
                name="cold_solver",
                summary="an iterative solver without warm start",
                kind="iterative",
                factory="ptycho_core.testing.dummies:build_iterative",
                options={"iterations": Option("int", 5, "iterations", min=1)},
            )
        )


def _host(cold: bool = False) -> PluginHost:
    host = PluginHost(load="")
    host.register(dummies, "ptycho-dummies")
    if cold:
        host.register(ColdSolver(), "ptycho-cold")
    return host


@pytest.fixture(scope="module")
def tiny_test():
    return simulate_pair(TINY)[1]


def _row(result, name):
    return next(r for r in result.rows if r["generator"] == name)


# --- ENGINE[:ITERATIONS] and the start ---------------------------------------------------------------


def test_the_refine_setting_parses_engine_and_iterations():
    assert refine.parse("rpie:10") == refine.Refine("rpie", 10)
    assert refine.parse(" rpie ") == refine.Refine("rpie", None)
    assert refine.parse("ptycho-ptychi:rpie:5") == refine.Refine("ptycho-ptychi:rpie", 5)
    assert refine.parse("ptycho-ptychi:rpie") == refine.Refine("ptycho-ptychi:rpie", None)
    assert refine.parse(None) is None and refine.parse("") is None
    assert refine.Refine("rpie", 10).row_name("fno") == "fno+rpie"
    for bad in ("rpie:0", ":5", "a b:3"):
        with pytest.raises(UsageError):
            refine.parse(bad)


def test_the_start_is_the_stitched_object_rescaled_to_the_data(tiny_test):
    shape, positions, _ = pipeline.object_grid(tiny_test)
    obj, weights = stitch.probe_weighted(tiny_test.gt_patches() * 0.4, positions, shape, tiny_test.probe)
    start = refine.start_object(obj, weights, positions, tiny_test.probe, tiny_test.diffraction)
    assert start.dtype == np.complex64 and start.shape == shape
    covered = weights > 0
    assert not covered.all()  # the corners are outside every patch: filled with the mean
    np.testing.assert_allclose(start[~covered], np.mean(start[covered]), rtol=0.1)
    # the 0.4 is undone by fitting the forward amplitudes to the data (no ground truth used)
    ratio = np.abs(start[covered]).mean() / np.abs(tiny_test.object[covered]).mean()
    assert ratio == pytest.approx(1.0, abs=0.05)


def test_a_start_goes_only_to_an_engine_with_warm_start(tiny_test):
    host = _host(cold=True)
    cold = host.registry().generator("cold_solver")
    with pytest.raises(UsageError, match="cannot refine"):
        pipeline.reconstruct_scan(cold, {}, tiny_test, pipeline.TrainConfig(), start=(tiny_test.object, None))
    with pytest.raises(UsageError, match="cannot refine"):
        refine.engine_spec(host.registry(), refine.parse("cold_solver:3"))
    with pytest.raises(UsageError, match="learned"):
        refine.engine_spec(host.registry(), refine.parse("dummy_intensity"))


def test_checkpoints_are_about_ten_per_decade_and_the_last():
    assert quality_time.checkpoints(1) == (1,)
    assert quality_time.checkpoints(20) == (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20)
    assert quality_time.checkpoints(50)[-5:] == (20, 25, 30, 40, 50)
    assert quality_time.checkpoints(7) == (1, 2, 3, 4, 5, 6, 7)


def test_seconds_to_quality_is_the_first_checkpoint_meeting_both_thresholds():
    def point(t, amp, phase):
        return {"seconds": t, "amp_ssim": amp, "phase_ssim": phase}

    points = [point(1.0, 0.96, 0.5), point(2.0, 0.94, 0.95), point(3.0, 0.95, 0.90), point(4.0, 0.99, 0.99)]
    assert quality_time.seconds_to_quality(points) == (3.0, True)
    assert quality_time.seconds_to_quality(points[:2]) == (None, False)
    assert quality_time.seconds_to_quality([{"seconds": 1.0, "data_error": 0.1}]) == (None, None)


# --- compare --refine -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def refined(tmp_path_factory):
    """dummy_intensity (learned), dummy_iterative and dummy_intensity+dummy_iterative, one comparison."""
    out = tmp_path_factory.mktemp("refine") / "cmp"
    result = compare.run(
        ["dummy_intensity", "dummy_iterative"],
        host=_host(),
        out=out,
        simulate=TINY,
        epochs=2,
        options=OPTIONS,
        refine="dummy_iterative:10",
    )
    return result, out


def test_every_learned_row_gets_a_refined_row_right_after_it(refined):
    result, out = refined
    assert result.exit_code == 0, result.rows
    assert [r["generator"] for r in result.rows] == [
        "dummy_intensity",
        "dummy_intensity+dummy_iterative",
        "dummy_iterative",
    ]
    learned, row = _row(result, "dummy_intensity"), _row(result, "dummy_intensity+dummy_iterative")
    assert row["kind"] == "refined" and row["status"] == "ok"
    # refining the flat learned patches beats them by far
    assert row["amp_ssim"] > learned["amp_ssim"] + 0.2 and row["phase_ssim"] > learned["phase_ssim"] + 0.2
    run = out / "runs" / "dummy_intensity+dummy_iterative"
    record = json.loads((run / "run.json").read_text())
    assert record["kind"] == "refined" and record["options"]["iterations"] == 10
    assert record["meta"]["learned_run"] == "dummy_intensity" and record["meta"]["refine"] == "dummy_iterative:10"
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 10
    with np.load(run / "recon.npz", allow_pickle=False) as z:
        assert z["object"].shape == z["start"].shape == (48, 48)
        assert z["snapshot_iterations"].tolist() == [1, 2, 3, 4, 5, 6, 8, 10]
        np.testing.assert_array_equal(z["snapshot_objects"][-1], z["object"])
    assert not (run / "model").exists()


def test_a_refined_row_records_both_parts_times(refined):
    result, _ = refined
    learned, row = _row(result, "dummy_intensity"), _row(result, "dummy_intensity+dummy_iterative")
    assert row["train_seconds"] == learned["train_seconds"]  # shown apart, as for the learned row
    assert row["start_seconds"] >= learned["reconstruct_seconds"]  # inference + stitching + start
    assert row["refine_seconds"] > 0
    assert row["reconstruct_seconds"] == pytest.approx(row["start_seconds"] + row["refine_seconds"])
    assert row["inference_patterns_per_s"] == pytest.approx(64 / row["reconstruct_seconds"], rel=1e-6)
    for other in (learned, _row(result, "dummy_iterative")):
        assert other["start_seconds"] is None and other["refine_seconds"] is None


def test_every_row_has_its_quality_against_seconds(refined):
    result, out = refined
    curves = json.loads((out / "metrics.json").read_text())["quality_against_seconds"]
    assert set(curves) == {r["generator"] for r in result.rows}
    learned = curves["dummy_intensity"]
    assert learned["kind"] == "learned" and len(learned["points"]) == 1
    assert learned["points"][0]["seconds"] == pytest.approx(_row(result, "dummy_intensity")["reconstruct_seconds"])
    iterative = curves["dummy_iterative"]["points"]
    assert [p["iteration"] for p in iterative] == list(quality_time.checkpoints(15))
    assert all(a["seconds"] < b["seconds"] for a, b in zip(iterative, iterative[1:]))
    assert iterative[-1]["amp_ssim"] == pytest.approx(_row(result, "dummy_iterative")["amp_ssim"])
    assert iterative[-1]["amp_ssim"] > iterative[0]["amp_ssim"]
    row = _row(result, "dummy_intensity+dummy_iterative")
    points = curves["dummy_intensity+dummy_iterative"]["points"]
    assert points[0]["iteration"] == 0 and points[0]["seconds"] == pytest.approx(row["start_seconds"])
    assert points[0]["amp_ssim"] == pytest.approx(_row(result, "dummy_intensity")["amp_ssim"], abs=0.02)
    assert points[-1]["seconds"] <= row["reconstruct_seconds"] + 1e-6
    assert (out / "quality.png").stat().st_size > 0
    html = (out / "report.html").read_text()
    assert "Quality against seconds" in html and "s to quality" in html


def test_the_time_to_quality_column_is_a_time_or_not_reached(refined):
    result, out = refined
    for row in result.rows:
        seconds, reached = row["seconds_to_quality"], row["quality_reached"]
        assert reached in (0.0, 1.0)
        assert (seconds is not None) == (reached == 1.0)
    from ptycho_core import metric_registry, report

    column = metric_registry.metric("seconds_to_quality")
    assert column.table and column.terminal
    assert report.format_value({"seconds_to_quality": None, "quality_reached": 0.0}, column) == "not reached"
    assert report.format_value({"seconds_to_quality": 1.234, "quality_reached": 1.0}, column) == "1.23"
    assert report.format_value({"seconds_to_quality": None}, column) == "-"  # no quality to judge by
    assert "seconds_to_quality" in (out / "metrics.csv").read_text().splitlines()[0]


def test_refined_rows_are_resumed_like_other_rows(refined, tmp_path):
    result, out = refined
    copy = tmp_path / "cmp"
    shutil.copytree(out, copy)
    settings = {"host": _host(), "out": copy, "simulate": TINY, "epochs": 2, "options": OPTIONS}
    again = compare.run(["dummy_intensity", "dummy_iterative"], refine="dummy_iterative:10", **settings)
    assert all(r["reused"] for r in again.rows)
    name = "dummy_intensity+dummy_iterative"
    assert _row(again, name)["amp_ssim"] == _row(result, name)["amp_ssim"]
    # other iterations: only the refined run is redone
    redo = compare.run(["dummy_intensity", "dummy_iterative"], refine="dummy_iterative:5", **settings)
    assert [r["generator"] for r in redo.rows if not r["reused"]] == [name]
    # a learned run redone (--force) gives new patches: its refinement is redone with it
    assert all(
        not r["reused"]
        for r in compare.run(["dummy_intensity"], refine="dummy_iterative:5", force=True, **settings).rows
    )


def test_a_failed_learned_row_gives_a_failed_refined_row(tmp_path):
    result = compare.run(
        ["dummy_raising", "dummy_intensity"],
        host=_host(),
        out=tmp_path / "cmp",
        simulate=TINY,
        epochs=2,
        refine="dummy_iterative:3",
    )
    assert result.exit_code == 1
    failed = _row(result, "dummy_raising+dummy_iterative")
    assert failed["status"].startswith("failed") and "learned run dummy_raising failed" in failed["status"]
    assert _row(result, "dummy_intensity+dummy_iterative")["status"] == "ok"


def test_an_engine_that_cannot_refine_is_refused_before_any_work(tmp_path):
    for engine, words in (("cold_solver", "cannot refine"), ("dummy_intensity", "learned"), ("nope", "nope")):
        with pytest.raises(UsageError, match=words):
            compare.run(["dummy_intensity"], host=_host(cold=True), out=tmp_path / engine, simulate=TINY, refine=engine)
        assert not (tmp_path / engine).exists()


def test_compare_refine_on_the_command_line(invoke, tmp_path, one_line_error):
    host = _host(cold=True)
    out = tmp_path / "cmp"
    args = ["compare", "-g", "dummy_intensity", "--simulate", "lines", "--sim", "object_size=48"]
    args += ["--sim", "patch_size=16", "--sim", "step=4", "--sim", "train_objects=1", "--epochs", "1"]
    result = invoke(*args, "--out", out, "--refine", "dummy_iterative:4", "-o", "dummy_iterative.step=0.5", host=host)
    assert result.exit_code == 0, result.output
    assert "dummy_intensity+dummy_iterative" in result.output
    record = json.loads((out / "runs" / "dummy_intensity+dummy_iterative" / "run.json").read_text())
    assert record["options"]["iterations"] == 4 and record["options"]["step"] == 0.5
    line = one_line_error(invoke(*args, "--out", tmp_path / "c2", "--refine", "cold_solver:4", host=host))
    assert "cold_solver" in line and "cannot refine" in line


# --- ptycho reconstruct --model M --refine ----------------------------------------------------------------


def test_reconstruct_refines_a_trained_model_s_object(invoke, tmp_path, tiny_test, one_line_error):
    from ptycho_core.io.npz import save_npz

    host = _host(cold=True)
    data = tmp_path / "scan.npz"
    save_npz(tiny_test, data)
    model = tmp_path / "model"
    trained = invoke("train", "-g", "dummy_intensity", "--data", data, "--out", model, "--epochs", "2", host=host)
    assert trained.exit_code == 0, trained.output
    plain, refined = tmp_path / "plain.npz", tmp_path / "refined.npz"
    assert invoke("reconstruct", "--model", model, "--data", data, "--out", plain, host=host).exit_code == 0
    result = invoke(
        "reconstruct", "--model", model, "--data", data, "--out", refined, "--refine", "dummy_iterative:20", host=host
    )
    assert result.exit_code == 0, result.output
    assert "dummy_intensity+dummy_iterative" in result.output and "inference" in result.output
    with np.load(plain, allow_pickle=False) as a, np.load(refined, allow_pickle=False) as b:
        before, after = json.loads(str(a["metrics_json"])), json.loads(str(b["metrics_json"]))
        assert b["object"].shape == tiny_test.object.shape
    assert after["amp_ssim"] > before["amp_ssim"] + 0.2
    assert after["refine_seconds"] > 0 and after["start_seconds"] >= after["inference_seconds"]
    line = one_line_error(
        invoke("reconstruct", "--model", model, "--data", data, "--out", refined, "--refine", "cold_solver", host=host)
    )
    assert "cannot refine" in line
    line = one_line_error(
        invoke("reconstruct", "-g", "dummy_iterative", "--data", data, "--out", refined, "--refine", "x", host=host)
    )
    assert "--refine applies to --model" in line


def test_the_quality_figure_draws_without_ground_truth(tmp_path):
    from ptycho_core import report

    curves = {"rpie": {"kind": "iterative", "points": [{"seconds": 1.0, "iteration": 1, "data_error": 0.1}]}}
    path = report.quality_figure(curves, tmp_path / "quality.png")
    assert path.stat().st_size > 0
    assert quality_time.seconds_to_quality(curves["rpie"]["points"]) == (None, None)


def test_without_ground_truth_quality_is_measured_against_the_reference_row(tmp_path):
    import dataclasses

    train, test = (dataclasses.replace(ds, object=None) for ds in simulate_pair(TINY))
    result = compare.run(
        ["dummy_intensity", "dummy_iterative"],
        host=_host(),
        out=tmp_path / "cmp",
        data=train,
        test_data=test,
        epochs=1,
        options=OPTIONS,
        refine="dummy_iterative:5",
    )
    assert result.exit_code == 0, result.rows
    assert all(r["amp_ssim"] is None for r in result.rows)  # no ground truth: no SSIM in the table
    curves = json.loads((tmp_path / "cmp" / "metrics.json").read_text())["quality_against_seconds"]
    assert {c["against"] for c in curves.values()} == {"dummy_iterative"}
    reference = curves["dummy_iterative"]["points"]
    assert reference[-1]["amp_ssim"] == pytest.approx(1.0)  # the reference agrees with itself at the end
    refined = curves["dummy_intensity+dummy_iterative"]["points"]
    learned = curves["dummy_intensity"]["points"]
    assert refined[-1]["phase_ssim"] > learned[0]["phase_ssim"]  # refining moves towards the reference
    for row in result.rows:
        assert row["quality_reached"] in (0.0, 1.0)
