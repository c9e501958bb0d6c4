"""The compare harness end to end, with tiny numpy dummies in spawned children.

Children cost ~1-2 s each, so one module-scoped comparison (six dummies, two at a time) feeds most
assertions; resume and ground-truth-free runs add one child each; usage errors spawn none.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from rich.console import Console

from ptycho_cli.progress import CompareDisplay, print_result
from ptycho_core import compare, pipeline, rundir
from ptycho_core.errors import DataError, PtychoError, UsageError
from ptycho_core.harness import plan as planning
from ptycho_core.harness import supervise
from ptycho_core.hookspecs import hookimpl
from ptycho_core.plugins import PluginHost
from ptycho_core.registry import GeneratorSpec
from ptycho_core.simulate import SimConfig, simulate_pair
from ptycho_core.testing import dummies

TINY = SimConfig(train_objects=1, patch_size=16, object_size=48, step=4)
TIMEOUT = 4.0
MIXED = ["dummy_intensity", "dummy_supervised", "dummy_raising", "dummy_dying", "dummy_nan", "dummy_sleeping"]
RUN_FILES = ("DONE", "run.json", "run.log", "history.json", "recon.npz", "metrics.json", "model/config.json")


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=120, force_terminal=False, color_system=None), buffer


def _host(*plugins) -> PluginHost:
    host = PluginHost(load="")
    host.register(dummies, "ptycho-dummies")
    for i, plugin in enumerate(plugins):
        host.register(plugin, f"extra-{i}")
    return host


def _run(host, out, generators, **kwargs):
    console, buffer = _console()
    kwargs.setdefault("simulate", TINY)
    kwargs.setdefault("epochs", 3)
    with CompareDisplay(console) as display:
        result = compare.run(generators, host=host, out=out, on_event=display, **kwargs)
    print_result(result, console)
    return result, buffer.getvalue()


class _Unavailable:
    """A plugin whose generator needs a module that is not installed."""

    @hookimpl
    def ptycho_register_generators(self, register):
        register(
            GeneratorSpec(
                name="needs_missing",
                summary="needs a framework that is not installed",
                factory="no_such_module_xyz:build",
                requires=("no_such_module_xyz",),
            )
        )


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """One comparison: two working dummies and one of each failure, two children at a time."""
    out = tmp_path_factory.mktemp("mixed") / "cmp"
    result, text = _run(_host(), out, MIXED, jobs=2, timeout=TIMEOUT, command_line=["ptycho", "compare"])
    return result, text, out


def _row(result, name):
    return next(r for r in result.rows if r["generator"] == name)


# --- one comparison, many failures ------------------------------------------------------------------


def test_comparison_writes_every_output_file(mixed):
    result, _, out = mixed
    for name in (
        "metrics.csv",
        "metrics.json",
        "comparison.png",
        "errors.png",
        "frc.png",
        "quality.png",
        "training.png",
        "report.html",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in ("dummy_intensity", "dummy_supervised"):
        for file in RUN_FILES:
            assert (out / "runs" / name / file).is_file(), f"{name}/{file}"
    for file in ("train.npz", "val.npz", "test.npz", "train_gt.npz", "prepared.json"):
        assert (out / "data" / file).is_file(), file
    assert result.report == out / "report.html"
    assert not list((out / "runs").glob(".*")), "no temporary folder is left behind"


def test_successful_rows_have_finite_metrics_and_costs(mixed):
    result, _, _ = mixed
    for name in ("dummy_intensity", "dummy_supervised"):
        row = _row(result, name)
        assert row["status"] == "ok"
        for key in (
            "amp_ssim",
            "amp_psnr",
            "amp_mae",
            "phase_ssim",
            "phase_mae",
            "frc_amp_px",
            "data_error",
            "train_seconds",
            "inference_patterns_per_s",
            "peak_rss_mib",
        ):
            assert np.isfinite(row[key]), f"{name}.{key}"
        assert row["parameters"] == (1 if name == "dummy_intensity" else 4)
        assert 0 < row["data_error"] < 1


def test_every_failure_is_a_row_with_its_reason_and_the_rest_finish(mixed):
    result, _, out = mixed
    assert result.exit_code == 1
    reasons = {
        "dummy_raising": "RuntimeError: dummy failure in fit",
        "dummy_dying": "exited with code 3",
        "dummy_nan": "non-finite loss at epoch 1",
        "dummy_sleeping": f"timeout after {TIMEOUT:g} s",
    }
    for name, reason in reasons.items():
        row = _row(result, name)
        assert row["status"].startswith("failed") and reason in row["status"], row["status"]
        run_dir = out / "runs" / name
        assert not (run_dir / "DONE").exists()
        assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
        assert (run_dir / "run.log").is_file()
    log = (out / "runs" / "dummy_raising" / "run.log").read_text()
    assert "Traceback" in log and "dummy failure in fit" in log, "the child's stderr goes to run.log"


def test_unsupervised_generator_never_receives_ground_truth(mixed):
    # dummy_intensity raises if it is handed ground-truth patches; the supervised dummy needs them.
    result, _, out = mixed
    assert (out / "data" / "train_gt.npz").is_file()
    assert _row(result, "dummy_intensity")["status"] == "ok"
    assert _row(result, "dummy_supervised")["status"] == "ok"


def test_terminal_shows_progress_table_failures_and_report_path(mixed):
    _, text, out = mixed
    assert "dummy_intensity: epoch 3/3" in text
    for name in MIXED:
        assert name in text
    assert "dummy_dying: failed: child process exited with code 3" in text
    assert f"report: {out / 'report.html'}" in text


def test_csv_and_json_hold_the_table_and_provenance(mixed):
    result, _, out = mixed
    header, *lines = (out / "metrics.csv").read_text().splitlines()
    assert header.startswith("generator,status,amp_ssim")
    assert len(lines) == len(MIXED)
    payload = json.loads((out / "metrics.json").read_text())
    assert [r["generator"] for r in payload["rows"]] == MIXED
    prov = payload["provenance"]
    assert prov["ptycho"] and "git_sha" in prov
    assert prov["hardware"]["cpu_count"] >= 1 and prov["hardware"]["platform"]
    assert prov["command_line"] == ["ptycho", "compare"]
    assert len(prov["data"]["fingerprint"]) == 64
    assert prov["split"]["test_groups"] == 64 and prov["train_config"]["epochs"] == 3
    assert {p["distribution"] for p in prov["plugins"]} >= {"ptycho", "ptycho-dummies"}


def test_report_html_is_self_contained(mixed):
    _, _, out = mixed
    text = (out / "report.html").read_text()
    assert text.count("data:image/png;base64,") == 5  # comparison, error maps, FRC, quality, training
    assert "http://" not in text and "https://" not in text
    assert "dummy_supervised" in text and "non-finite loss at epoch 1" in text and "Provenance" in text


# --- resume ------------------------------------------------------------------------------------------


def test_rerun_reuses_finished_runs_and_redoes_an_interrupted_one(mixed, tmp_path):
    _, _, source = mixed
    out = tmp_path / "cmp"
    shutil.copytree(source, out)
    log_before = (out / "runs" / "dummy_supervised" / "run.log").stat().st_mtime_ns
    # Interrupt dummy_intensity after the fact: no DONE marker, a stale partial folder.
    (out / "runs" / "dummy_intensity" / "DONE").unlink()
    (out / "runs" / ".dummy_intensity.partial").mkdir()
    result, text = _run(_host(), out, ["dummy_intensity", "dummy_supervised"])
    assert result.exit_code == 0
    assert "dummy_supervised: reusing runs/dummy_supervised" in text
    assert "dummy_intensity: redoing (the previous attempt did not finish (no DONE marker))" in text
    assert (out / "runs" / "dummy_supervised" / "run.log").stat().st_mtime_ns == log_before
    assert (out / "runs" / "dummy_intensity" / "DONE").is_file()
    assert [r.reused for r in result.runs] == [False, True]
    assert all(np.isfinite(r["amp_ssim"]) for r in result.rows)


def test_resume_decision_trusts_only_done_and_matching_hash(tmp_path):
    run_dir = tmp_path / "gen"
    assert planning.resume_decision(run_dir, "h1", force=False) == (False, "new")
    run_dir.mkdir()
    rundir.write_json(run_dir / "run.json", {"hash": "h1", "status": "failed", "reason": "boom"})
    assert planning.resume_decision(run_dir, "h1", False) == (False, "the previous attempt failed: boom")
    rundir.write_json(run_dir / "run.json", {"hash": "h1", "status": "ok"})
    assert "no DONE marker" in planning.resume_decision(run_dir, "h1", False)[1]
    (run_dir / "DONE").write_text("h1\n")
    (run_dir / "recon.npz").write_bytes(b"")
    assert planning.resume_decision(run_dir, "h1", False) == (True, "finished with the same inputs")
    assert planning.resume_decision(run_dir, "h2", False)[1].startswith("inputs changed")
    assert planning.resume_decision(run_dir, "h1", True) == (False, "--force")


def test_run_hash_changes_with_budget_options_and_data(tmp_path):
    from ptycho_core.generator import TrainConfig

    spec = dummies.specs()[0]
    plan = planning.RunPlan("x", "x", spec, spec.resolve_options({}), 0, TrainConfig(epochs=3))
    base = planning.run_hash(plan, "fp", "prep", {})
    assert planning.run_hash(plan, "fp", "prep", {}) == base
    assert planning.run_hash(plan, "fp2", "prep", {}) != base
    assert planning.run_hash(plan, "fp", "prep2", {}) != base
    changed = planning.RunPlan("x", "x", spec, spec.resolve_options({"rate": 0.9}), 0, TrainConfig(epochs=3))
    assert planning.run_hash(changed, "fp", "prep", {}) != base
    longer = planning.RunPlan("x", "x", spec, spec.resolve_options({}), 0, TrainConfig(epochs=4))
    assert planning.run_hash(longer, "fp", "prep", {}) != base


# --- data without ground truth ----------------------------------------------------------------------


def _without_object(ds):
    import dataclasses

    return dataclasses.replace(ds, object=None)


def test_ground_truth_free_data_gets_data_space_errors_and_a_report(tmp_path):
    train, test = (_without_object(ds) for ds in simulate_pair(TINY))
    out = tmp_path / "cmp"
    # No generator named: every available one runs; the supervised and the unavailable are skipped.
    host = PluginHost(load="")
    host.register(_OnlyTwoDummies(), "two-dummies")
    host.register(_Unavailable(), "unavailable")
    result, text = _run(host, out, None, data=train, test_data=test, simulate=None)
    assert result.exit_code == 0
    (row,) = result.rows
    assert row["generator"] == "dummy_intensity"
    assert 0 < row["data_error"] < 1
    assert row["amp_ssim"] is None
    skipped = {s["generator"]: s["reason"] for s in result.skipped}
    assert skipped["dummy_supervised"].startswith("supervised")
    assert "missing no_such_module_xyz" in skipped["needs_missing"]
    assert "skipped needs_missing" in text
    for name in ("report.html", "comparison.png", "frc.png", "metrics.csv"):
        assert (out / name).is_file()
    assert not (out / "data" / "train_gt.npz").exists()


class _OnlyTwoDummies:
    @hookimpl
    def ptycho_register_generators(self, register):
        for spec in dummies.specs()[:2]:
            register(spec)


# --- bad usage: exit 2 before any work --------------------------------------------------------------


@pytest.mark.parametrize(
    ("generators", "kwargs", "error", "message"),
    [
        (["nope"], {}, UsageError, "unknown generator 'nope' (installed: "),
        (["needs_missing"], {}, UsageError, "unavailable: missing no_such_module_xyz (available: "),
        (["dummy_intensity"], {"options": ["dummy_intensity.nope=1"]}, UsageError, "unknown option(s) nope"),
        (["dummy_intensity"], {"options": ["dummy_intensity.rate=fast"]}, UsageError, "expected float"),
        (["dummy_intensity"], {"options": ["dummy_nan.x=1"]}, UsageError, "not a generator being compared"),
        (["dummy_intensity"], {"options": ["rate=1"]}, UsageError, "NAME.KEY=VALUE"),
        (["dummy_intensity"], {"stitcher": "nope"}, UsageError, "unknown stitcher"),
        (["dummy_intensity"], {"epochs": 0}, UsageError, "epochs"),
        (["dummy_intensity"], {"simulate": "stars"}, UsageError, "--simulate must be one of"),
        (["dummy_intensity"], {"simulate": None, "test_data": "x.npz"}, UsageError, "--test-data needs --data"),
        (["dummy_intensity"], {"simulate": None, "data": "missing.npz"}, DataError, "no such file"),
    ],
)
def test_bad_usage_fails_before_any_work(tmp_path, generators, kwargs, error, message):
    out = tmp_path / "cmp"
    with pytest.raises(error) as info:
        _run(_host(_Unavailable()), out, generators, **kwargs)
    assert message in str(info.value)
    assert not (out / "runs").exists()


def test_supervised_generator_on_data_without_ground_truth_is_refused(tmp_path):
    train, test = (_without_object(ds) for ds in simulate_pair(TINY))
    out = tmp_path / "cmp"
    with pytest.raises(PtychoError, match="dummy_supervised.*supervised.*no ground-truth"):
        _run(_host(), out, ["dummy_intensity", "dummy_supervised"], data=train, test_data=test, simulate=None)
    assert not (out / "runs").exists()


def test_option_arguments_are_parsed_by_name_and_key():
    parsed = planning.parse_option_args(["fno.width=16", "ptycho-fno:fno.modes=8", "pinn_tf.filter_scale= 1"])
    assert parsed == {"fno": {"width": "16"}, "ptycho-fno:fno": {"modes": "8"}, "pinn_tf": {"filter_scale": "1"}}


def test_child_environment_bounds_threads_and_adds_the_specs_own_variables():
    torch_spec = GeneratorSpec(name="t", summary="", factory="m:f", framework="torch")
    tf_spec = GeneratorSpec(
        name="k",
        summary="",
        factory="m:f",
        framework="tensorflow",
        child_env={"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2", "TF_NUM_INTRAOP_THREADS": "{threads}"},
    )
    env = supervise.child_environment(torch_spec, 3)
    assert env["OMP_NUM_THREADS"] == "3" and "KERAS_BACKEND" not in env
    env = supervise.child_environment(tf_spec, 1)
    assert env["KERAS_BACKEND"] == "tensorflow" and env["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert env["TF_NUM_INTRAOP_THREADS"] == "1"
    assert "TF_ENABLE_ONEDNN_OPTS" not in env


def test_true_anchor_patches_stitch_and_score_perfectly():
    _, test = simulate_pair(TINY)
    registry = PluginHost(load="").registry()
    scored = pipeline.stitch_and_score(test.gt_patches(), test, registry.stitcher("probe_weighted"), registry)
    assert scored.metrics["amp_ssim"] > 0.97 and scored.metrics["phase_ssim"] > 0.97
    assert scored.metrics["data_error"] < 0.1
    assert set(scored.frc) == {"amp", "phase"}
