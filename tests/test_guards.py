"""The comparison's guards, each exercised in-process: non-finite predictions and losses, a stitcher
failing while scoring, a child whose parent is gone, a parent interrupt, and atomic writes."""

from __future__ import annotations

import json
import multiprocessing
import os

import numpy as np
import pytest

from ptycho_core import compare, errors, pipeline, report, rundir
from ptycho_core.generator import History, TrainConfig
from ptycho_core.harness import executors, score, supervise, worker
from ptycho_core.harness import plan as planning
from ptycho_core.harness.prepared import save_prepared
from ptycho_core.hookspecs import hookimpl
from ptycho_core.plugins import PluginHost
from ptycho_core.registry import StitcherSpec, spec_as_dict
from ptycho_core.simulate import SimConfig, simulate_pair
from ptycho_core.testing import dummies

TINY = SimConfig(train_objects=1, patch_size=16, object_size=40, step=4)


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """(data directory, test dataset) of the tiny simulation, prepared at gridsize 1."""
    train, test = simulate_pair(TINY)
    prepared = pipeline.prepare(train, test, gridsize=1, seed=0, val_fraction=0.2, supervised=True)
    directory = tmp_path_factory.mktemp("data")
    save_prepared(prepared, directory)
    return directory, test


def _spec(name="dummy_intensity"):
    return next(s for s in dummies.specs() if s.name == name)


def _plan(name="dummy_intensity") -> planning.RunPlan:
    spec = _spec(name)
    return planning.RunPlan(name, name, spec, spec.resolve_options({}), 0, TrainConfig(epochs=2), hash="h1")


def _job(layout: rundir.Layout, data_dir, name="dummy_intensity") -> dict:
    spec = _spec(name)
    return {
        "name": name,
        "spec": spec_as_dict(spec),
        "options": spec.resolve_options({}),
        "train_config": TrainConfig(epochs=2).to_dict(),
        "data_dir": str(data_dir),
        "partial_dir": str(layout.partial_dir(name)),
        "run_dir": str(layout.run_dir(name)),
        "hash": "h1",
        "threads": 1,
    }


def _run_child_in_process(job, monkeypatch) -> int:
    """`worker.main` in this process (its output left alone); returns its exit code."""
    monkeypatch.setattr(worker, "_redirect_output", lambda path: None)
    with pytest.raises(SystemExit) as exit_info:
        worker.main(job)
    return exit_info.value.code


# --- non-finite results -------------------------------------------------------------------------


def test_nan_predictions_give_a_failed_row_with_the_reason(staged, tmp_path, monkeypatch):
    data_dir, _ = staged
    layout = rundir.Layout(tmp_path)

    def nan_predict(self, diffraction, offsets):
        return np.full(diffraction.shape, np.nan, np.complex64)

    monkeypatch.setattr(dummies.IntensityGenerator, "predict", nan_predict)
    assert _run_child_in_process(_job(layout, data_dir), monkeypatch) == 1
    outcome = supervise.collect(executors.run_spec(_plan(), layout), layout, 1, None)
    assert outcome == supervise.Outcome(ok=False, reason="non-finite values in the predicted patches")
    run_dir = layout.run_dir("dummy_intensity")
    assert not (run_dir / rundir.DONE).exists() and not (run_dir / rundir.RECON_NPZ).exists()
    assert json.loads((run_dir / rundir.RUN_JSON).read_text())["status"] == "failed"


@pytest.mark.parametrize("loss", [[2.0, float("nan")], [float("inf"), 1.0], [], [1.0, None]])
def test_a_non_finite_loss_without_a_stop_reason_fails_the_run(loss):
    with pytest.raises(errors.RunFailed, match="non-finite loss in the training history"):
        worker.check_history(History(loss=loss, stopped=""))
    worker.check_history(History(loss=[2.0, 1.0], stopped="early stop at epoch 2"))  # finite: accepted


# --- scoring ------------------------------------------------------------------------------------


class _BrokenStitcher:
    @hookimpl
    def ptycho_register_stitchers(self, register):
        register(StitcherSpec(name="broken", summary="raises", factory="ptycho_core.testing.dummies:raising_stitcher"))


def test_a_stitcher_failing_during_scoring_is_a_failed_row(staged, tmp_path):
    data_dir, test = staged
    layout = rundir.Layout(tmp_path)
    worker.execute(_job(layout, data_dir))
    host = PluginHost(load="")
    host.register(_BrokenStitcher(), "broken-stitcher")
    registry = host.registry()
    stitcher = registry.stitcher("broken")
    ok = supervise.Outcome(ok=True)
    scored = score.score_run(_plan(), layout, ok, test, stitcher, {}, registry)
    assert not scored.row.ok
    assert scored.row.reason == "scoring failed: RuntimeError: dummy stitcher failure"
    assert not (layout.run_dir("dummy_intensity") / rundir.METRICS_JSON).exists()
    good = score.score_run(_plan(), layout, ok, test, registry.stitcher("mean"), {}, registry)
    assert good.row.ok and (layout.run_dir("dummy_intensity") / rundir.METRICS_JSON).is_file()


# --- the child and its parent -------------------------------------------------------------------


def test_the_child_exits_when_its_parent_is_gone(monkeypatch):
    receiver, sender = multiprocessing.Pipe(duplex=False)
    emit = worker._emitter("run", supervise.PipeEvents(sender))
    emit({"type": "progress", "epoch": 1})
    assert json.loads(receiver.recv_bytes())["epoch"] == 1, "events reach a living parent"
    receiver.close()  # the parent is gone: writing to the pipe breaks

    class Exited(Exception):
        pass

    def exit_now(code):
        raise Exited(code)

    monkeypatch.setattr(worker.os, "_exit", exit_now)
    with pytest.raises(Exited) as exited:
        emit({"type": "progress", "epoch": 2})
    assert exited.value.args == (worker.PARENT_GONE,)
    sender.close()


class _FakeProcess:
    """A child that runs until killed (enough of multiprocessing.Process for `run_children`)."""

    def __init__(self):
        self.exitcode = None

    def is_alive(self):
        return self.exitcode is None

    def kill(self):
        self.exitcode = -9

    def join(self):
        pass


def _interrupt_after_launch(monkeypatch, launched):
    def launch(ctx, run, layout, threads):
        launched.append(run.name)
        layout.partial_dir(run.name).mkdir(parents=True)
        return supervise.Child(run=run, process=_FakeProcess(), events=None, launched=0.0)

    def wait_for_news(running, on_event):
        raise KeyboardInterrupt

    monkeypatch.setattr(supervise, "launch", launch)
    monkeypatch.setattr(supervise, "_wait_for_news", wait_for_news)


def test_a_parent_interrupt_gives_interrupted_rows_and_a_report(tmp_path, monkeypatch):
    launched = []
    _interrupt_after_launch(monkeypatch, launched)
    host = PluginHost(load="")
    host.register(dummies, "ptycho-dummies")
    names = ["dummy_intensity", "dummy_supervised"]
    result = compare.run(names, host=host, out=tmp_path, simulate=TINY, epochs=1)
    assert launched == ["dummy_intensity"], "one job at a time: the second never started"
    assert result.exit_code == compare.INTERRUPTED_EXIT == 130
    assert [(r.generator, r.status, r.reason) for r in result.runs] == [(n, "failed", "interrupted") for n in names]
    run_json = json.loads((tmp_path / "runs" / "dummy_intensity" / "run.json").read_text())
    assert run_json["status"] == "failed" and run_json["reason"] == "interrupted"
    assert result.report.is_file()
    table = json.loads((tmp_path / "metrics.json").read_text())["rows"]
    assert [(r["generator"], r["status"]) for r in table] == [(n, "failed: interrupted") for n in names]


# --- atomic writes ------------------------------------------------------------------------------


def _failing_replace(monkeypatch):
    """Make every rename fail: the moment between writing a file and publishing it."""

    def replace(src, dst):
        raise OSError("killed before the rename")

    monkeypatch.setattr(os, "replace", replace)


def _contents(directory) -> dict:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "write",
    [
        lambda path: rundir.write_json(path, {"new": [1.0, 2.0] * 1000}),
        lambda path: rundir.write_text(path, "new\n" * 1000),
        lambda path: rundir.write_npz(path, a=np.arange(1000.0)),
    ],
    ids=["json", "text", "npz"],
)
def test_a_write_stopped_before_its_rename_leaves_the_old_file_or_none(tmp_path, monkeypatch, write):
    old = tmp_path / "old.dat"
    old.write_bytes(b"old contents")
    _failing_replace(monkeypatch)
    for path in (old, tmp_path / "new.dat"):
        with pytest.raises(OSError, match="killed before the rename"):
            write(path)
    assert _contents(tmp_path) == {"old.dat": b"old contents"}, "no new file, no half file, no temporary left"
    monkeypatch.undo()
    write(old)
    assert old.read_bytes() != b"old contents"


def test_a_report_stopped_before_its_renames_leaves_the_old_report(tmp_path, monkeypatch):
    rows = report.summarise([rundir.Row(generator="model", run="model", metrics={"amp_ssim": 0.5})])
    kwargs = {"runs": [], "skipped": [], "provenance": {}, "truth": None, "panels": {}, "histories": {}}
    report.write_report(tmp_path, rows=rows, **kwargs)
    before = _contents(tmp_path)
    assert {"metrics.csv", "metrics.json", "report.html"} <= set(before)
    _failing_replace(monkeypatch)
    changed = report.summarise([rundir.Row(generator="other", run="other", metrics={"amp_ssim": 0.9})])
    with pytest.raises(OSError, match="killed before the rename"):
        report.write_report(tmp_path, rows=changed, **kwargs)
    after = {k: v for k, v in _contents(tmp_path).items() if ".tmp" not in k}
    assert after == before
    with pytest.raises(OSError, match="killed before the rename"):
        report.write_report(tmp_path / "fresh", rows=changed, **kwargs)
    assert not [p for p in (tmp_path / "fresh").iterdir() if ".tmp" not in p.name], "no file but temporaries"


def test_a_publish_stopped_before_its_rename_keeps_the_old_run_folder(tmp_path, monkeypatch):
    final, partial = tmp_path / "run", tmp_path / ".run.partial"
    final.mkdir()
    rundir.write_text(final / rundir.DONE, "old\n")
    partial.mkdir()
    rundir.write_text(partial / rundir.DONE, "new\n")
    _failing_replace(monkeypatch)
    with pytest.raises(OSError):
        rundir.publish(partial, final)
    assert (final / rundir.DONE).read_text() == "old\n"
