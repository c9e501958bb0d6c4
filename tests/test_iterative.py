"""Iterative generators (`kind="iterative"`, docs/design.md#contracts) in the core, with the numpy dummy
`dummy_iterative` (full-batch PIE): whole-object scoring shares the stitched path's region,
alignment and metrics; compare runs iterative rows beside learned ones (times, failures, resume,
report, the default selection); `ptycho reconstruct --generator` needs no model; the conformance
kit's iterative checks pass for the dummy and catch broken ones."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from ptycho_core import compare, pipeline
from ptycho_core.generator import Reconstruction, TrainConfig
from ptycho_core.plugins import PluginHost
from ptycho_core.simulate import SimConfig, simulate_pair
from ptycho_core.testing import dummies
from ptycho_core.testing.conformance import ConformanceError, check_iterative, run_iterative_checks

TINY = SimConfig(train_objects=1, patch_size=16, object_size=48, step=4)


def _host() -> PluginHost:
    host = PluginHost(load="")
    host.register(dummies, "ptycho-dummies")
    return host


@pytest.fixture(scope="module")
def tiny_test():
    return simulate_pair(TINY)[1]


# --- whole-object scoring -------------------------------------------------------------------------


def test_the_true_object_scores_perfectly_and_like_its_stitched_patches(tiny_test):
    whole = pipeline.score_whole_object(tiny_test.object, tiny_test)
    stitched = pipeline.stitch_and_score(tiny_test.gt_patches(), tiny_test)
    assert whole.region == stitched.region  # one region: the probe-weighted illumination
    np.testing.assert_allclose(whole.weights, stitched.weights, rtol=1e-6)
    assert whole.metrics["amp_ssim"] > 0.999 and whole.metrics["phase_ssim"] > 0.999
    # stitching the true patches at sub-pixel positions blurs them a little (bilinear splatting)
    assert stitched.metrics["amp_ssim"] > 0.97 and stitched.metrics["phase_ssim"] > 0.97
    for result in (whole, stitched):
        assert result.metrics["twin_share"] == 0.0
        assert result.metrics["data_error"] < 0.05  # Poisson noise alone
    assert whole.metrics["covered_fraction"] == stitched.metrics["covered_fraction"]
    assert whole.metrics["data_error"] <= stitched.metrics["data_error"]


def test_whole_object_scoring_aligns_a_scaled_and_phase_shifted_object(tiny_test):
    # The global complex scalar of section 8 applies to whole objects exactly as to stitched ones.
    result = pipeline.score_whole_object(tiny_test.object * 0.5 * np.exp(1j * 0.7), tiny_test)
    assert result.metrics["amp_ssim"] > 0.999 and result.metrics["phase_mae"] < 1e-3


def test_whole_object_scoring_refuses_a_wrong_grid_or_nan(tiny_test):
    from ptycho_core.errors import PtychoError

    with pytest.raises(PtychoError, match="shape"):
        pipeline.score_whole_object(tiny_test.object[:-1], tiny_test)
    bad = tiny_test.object.copy()
    bad[3, 3] = np.nan
    with pytest.raises(PtychoError, match="NaN"):
        pipeline.score_whole_object(bad, tiny_test)


def test_without_ground_truth_the_grid_covers_every_patch_and_the_shift_is_recorded(tiny_test):
    blind = dataclasses.replace(tiny_test, object=None, object_shape=None)  # measured data: no grid known
    scan = pipeline.scan_for(blind)
    n = scan.patch_size
    assert (scan.positions - n // 2 >= 0).all()
    assert (scan.positions + n // 2 < np.array(scan.object_shape)).all()
    shape, positions, shift = pipeline.object_grid(blind)
    np.testing.assert_allclose(positions - blind.positions, np.broadcast_to(shift, positions.shape))
    # the children never see the object: its grid comes as Dataset.object_shape
    told = dataclasses.replace(blind, object_shape=tiny_test.object.shape)
    assert pipeline.object_grid(told)[0] == tiny_test.object.shape
    assert tiny_test.object_shape == tiny_test.object.shape  # set from the ground truth
    # the scan an iterative generator gets: one Dataset type, on its grid, without the ground truth
    on_grid = pipeline.scan_for(tiny_test)
    assert on_grid.object is None and on_grid.object_shape == tiny_test.object.shape
    np.testing.assert_array_equal(on_grid.positions, tiny_test.positions)  # a known grid: no shift
    on_grid.validate("scan")


def test_the_dummy_solver_reconstructs_the_object(tiny_test):
    spec = _host().registry().generator("dummy_iterative")
    events = []
    _, estimate, seconds = pipeline.reconstruct_scan(spec, {"iterations": 30}, tiny_test, TrainConfig(), events.append)
    assert isinstance(estimate, Reconstruction) and seconds > 0
    assert len(estimate.history.loss) == 30 and estimate.history.loss[-1] < 0.1 * estimate.history.loss[0]
    assert [e["epoch"] for e in events] == list(range(1, 31))
    scores = pipeline.score_whole_object(estimate.object, tiny_test).metrics
    assert scores["amp_ssim"] > 0.9 and scores["phase_ssim"] > 0.6


# --- compare ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """dummy_intensity (learned), dummy_iterative and its two broken modes, one comparison."""
    out = tmp_path_factory.mktemp("iterative") / "cmp"
    options = {"dummy_iterative": {"iterations": "15"}}
    result = compare.run(
        ["dummy_intensity", "dummy_iterative"], host=_host(), out=out, simulate=TINY, epochs=2, options=options
    )
    return result, out


def _row(result, name):
    return next(r for r in result.rows if r["generator"] == name)


def test_iterative_rows_sit_in_the_same_table_with_reconstruction_time(mixed):
    result, out = mixed
    assert result.exit_code == 0, result.rows
    learned, iterative = _row(result, "dummy_intensity"), _row(result, "dummy_iterative")
    assert iterative["kind"] == "iterative" and learned["kind"] == "learned"
    assert iterative["train_seconds"] is None and learned["train_seconds"] > 0
    for row in (learned, iterative):
        assert row["reconstruct_seconds"] > 0
        assert row["inference_patterns_per_s"] == pytest.approx(64 / row["reconstruct_seconds"], rel=1e-6)
        for key in ("amp_ssim", "phase_ssim", "data_error", "frc_amp_px", "twin_share"):
            assert row[key] is not None, key
    assert iterative["amp_ssim"] > learned["amp_ssim"]  # a solver beats flat patches
    run = out / "runs" / "dummy_iterative"
    with np.load(run / "recon.npz", allow_pickle=False) as z:
        assert z["object"].shape == (48, 48) and "patches" not in z.files
    assert not (run / "model").exists()
    assert json.loads((run / "run.json").read_text())["kind"] == "iterative"
    history = json.loads((run / "history.json").read_text())
    assert len(history["loss"]) == 15
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stitcher"] is None and metrics["metrics"]["amp_ssim"] == pytest.approx(iterative["amp_ssim"])
    csv = (out / "metrics.csv").read_text().splitlines()
    assert "reconstruct_seconds" in csv[0] and "kind" in csv[0]
    html = (out / "report.html").read_text()
    assert "dummy_iterative" in html and "recon s" in html


def test_iterative_runs_are_resumed_like_learned_ones(mixed, tmp_path):
    import shutil

    result, out = mixed
    copy = tmp_path / "cmp"
    shutil.copytree(out, copy)
    options = {"dummy_iterative": {"iterations": "15"}}
    again = compare.run(
        ["dummy_intensity", "dummy_iterative"], host=_host(), out=copy, simulate=TINY, epochs=2, options=options
    )
    assert all(r["reused"] for r in again.rows)
    assert _row(again, "dummy_iterative")["amp_ssim"] == _row(result, "dummy_iterative")["amp_ssim"]
    # the training budget is not an iterative run's input; its own options are
    again = compare.run(["dummy_iterative"], host=_host(), out=copy, simulate=TINY, epochs=7, options=options)
    assert again.rows[0]["reused"]
    options = {"dummy_iterative": {"iterations": "5"}}
    redo = compare.run(["dummy_iterative"], host=_host(), out=copy, simulate=TINY, epochs=2, options=options)
    assert not redo.rows[0]["reused"]


def test_a_failing_or_diverging_iterative_run_is_a_failed_row(tmp_path):
    options = {"dummy_iterative": {"error": "runtime"}}
    result = compare.run(["dummy_iterative"], host=_host(), out=tmp_path / "a", simulate=TINY, options=options)
    assert result.exit_code == 1
    assert "dummy failure in reconstruct" in result.rows[0]["status"]
    options = {"dummy_iterative": {"error": "nan"}}
    result = compare.run(["dummy_iterative"], host=_host(), out=tmp_path / "b", simulate=TINY, options=options)
    assert result.exit_code == 1 and "non-finite loss at epoch 2" in result.rows[0]["status"]


def test_the_default_comparison_selects_available_iterative_generators():
    from ptycho_core.harness import plan as planning

    specs, skipped, explicit = planning.select_generators(_host().registry(), None)
    assert "dummy_iterative" in [s.name for s in specs] and not explicit
    assert not any("iterative" in s["reason"] for s in skipped)


# --- ptycho reconstruct --generator -------------------------------------------------------------------


def test_reconstruct_runs_an_iterative_generator_without_a_model(invoke, tmp_path, tiny_test, one_line_error):
    from ptycho_core.io.npz import save_npz

    data = tmp_path / "scan.npz"
    save_npz(tiny_test, data)
    out = tmp_path / "recon.npz"
    host = _host()
    result = invoke(
        "reconstruct", "--generator", "dummy_iterative", "--data", data, "--out", out, "-o", "iterations=25", host=host
    )
    assert result.exit_code == 0, result.output
    assert "amp_ssim" in result.output
    with np.load(out, allow_pickle=False) as z:
        assert z["object"].shape == tiny_test.object.shape
        assert json.loads(str(z["metrics_json"]))["amp_ssim"] > 0.9
    line = one_line_error(invoke("reconstruct", "--data", data, "--out", out, host=host))
    assert "--model" in line and "--generator" in line
    line = one_line_error(invoke("reconstruct", "-g", "dummy_intensity", "--data", data, "--out", out, host=host))
    assert "learned" in line and "ptycho train" in line
    line = one_line_error(
        invoke("reconstruct", "-g", "dummy_iterative", "--data", data, "--out", out, "-o", "speed=3", host=host)
    )
    assert "unknown option" in line and "speed" in line


# --- the conformance kit's iterative checks --------------------------------------------------------------


def test_the_dummy_passes_the_iterative_conformance_checks():
    results = check_iterative(
        "dummy_iterative", registry=_host().registry(), plugin_module="ptycho_core.testing.dummies"
    )
    assert [r.status for r in results] == ["passed"] * len(results)


def test_the_iterative_checks_catch_a_diverging_or_do_nothing_solver():
    spec = _host().registry().generator("dummy_iterative")
    results = {r.check: r for r in run_iterative_checks(spec, options={"error": "nan"})}
    assert results["history_has_one_loss_per_iteration"].status == "failed"
    results = {r.check: r for r in run_iterative_checks(spec, options={"step": 0.0, "iterations": 2})}
    assert results["reconstruction_explains_the_data"].status == "failed"
    assert results["reconstruct_returns_the_object_grid"].status == "failed"  # a flat object: constant
    with pytest.raises(ConformanceError):
        check_iterative("dummy_intensity", registry=_host().registry())


def test_the_guide_s_iterative_solver_example_reconstructs(tiny_test):
    import re
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[1] / "docs" / "writing-a-plugin.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", guide, re.S) if "class MySolver" in b)
    namespace: dict = {}
    exec(compile(block, "writing-a-plugin.md", "exec"), namespace)
    estimate = namespace["build_mysolver"](30).reconstruct(pipeline.scan_for(tiny_test), TrainConfig(), lambda e: None)
    assert pipeline.score_whole_object(estimate.object, tiny_test).metrics["amp_ssim"] > 0.9
