"""The Dask executor against the local one: a real `distributed.LocalCluster` of two worker
processes runs two numpy dummies and one tiny `fno` with the same metrics as the local executor;
progress, failed rows and resume by hash behave alike; a worker killed under its task is survived.

One cluster serves the module (started once, ~3 s); the fno runs are the slow part (a torch import
in each spawned child).
"""

from __future__ import annotations

import math
import os
import signal
import sys

import pytest

from ptycho_core import compare, metric_registry, rundir
from ptycho_core.harness import events as ev
from ptycho_core.harness import executors, supervise
from ptycho_core.harness.executors import dask as dask_executor
from ptycho_core.plugins import PluginHost
from ptycho_core.simulate import SimConfig
from ptycho_core.testing import dummies

if os.environ.get("CI") == "true":  # CI installs dask[distributed] (make install): missing is a failure
    import distributed
else:
    distributed = pytest.importorskip("distributed")

TINY = SimConfig(train_objects=1, patch_size=16, object_size=48, step=4)
RUNS = ["dummy_intensity", "dummy_supervised", "fno"]
FNO_TINY = ["fno.width=4", "fno.blocks=1", "fno.modes=4", "fno.cnn_blocks=1"]


def _host() -> PluginHost:
    host = PluginHost(load="ptycho-fno")
    host.register(dummies, "ptycho-dummies")
    return host


@pytest.fixture(scope="module")
def cluster():
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield cluster, client


def _compare(out, executor, scheduler=None, generators=RUNS, **kwargs):
    events = []
    kwargs.setdefault("options", FNO_TINY)
    result = compare.run(
        generators, host=_host(), out=out, simulate=TINY, epochs=2, jobs=2, executor=executor,
        scheduler=scheduler, on_event=events.append, **kwargs,
    )  # fmt: skip
    return result, events


@pytest.fixture(scope="module")
def both(cluster, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("executors")
    local = _compare(tmp / "local", "local")
    dask = _compare(tmp / "dask", "dask", cluster[0].scheduler_address)
    return tmp, local, dask


def test_dask_runs_give_the_local_executors_metrics(both):
    _, (local, _), (dask, _) = both
    assert local.exit_code == dask.exit_code == 0, [(r.run, r.reason) for r in dask.runs]
    assert [r.run for r in dask.runs] == RUNS
    for mine, theirs in zip(local.runs, dask.runs, strict=True):
        assert mine.metrics.keys() == theirs.metrics.keys() and mine.metrics, mine.run
        for key in metric_registry.keys((*metric_registry.SCORED, "training")):  # not the costs: timings differ
            value = mine.metrics.get(key)
            if isinstance(value, float) and math.isfinite(value):
                assert theirs.metrics[key] == pytest.approx(value, rel=1e-6, abs=1e-9), (mine.run, key)
        assert mine.metrics["epochs_run"] == theirs.metrics["epochs_run"]


def test_dask_progress_reaches_the_client_as_with_local(both):
    _, (_, local_events), (_, dask_events) = both
    for events in (local_events, dask_events):
        for run in RUNS:
            kinds = [type(e).__name__ for e in events if getattr(e, "run", None) == run]
            assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished", (run, kinds)
            ends = [e.epoch for e in events if isinstance(e, ev.RunProgress) and e.run == run and e.epoch_end]
            assert ends == [1, 2], (run, ends)
        # after the children: only notes (the results database's "recorded as ..." line)
        assert isinstance([e for e in events if not isinstance(e, ev.Note)][-1], ev.ChildrenDone)


def test_neither_the_client_nor_the_workers_import_frameworks(both, cluster):
    _, client = cluster
    heavy = client.run(lambda: sorted(m for m in ("torch", "tensorflow", "keras") if m in sys.modules))
    assert heavy and all(mods == [] for mods in heavy.values()), heavy


def test_resume_by_hash_ignores_which_executor_ran_a_run(both, cluster):
    tmp, (local, _), _ = both
    again, events = _compare(tmp / "local", "dask", cluster[0].scheduler_address)
    assert all(r.reused for r in again.runs) and again.exit_code == 0
    assert not any(isinstance(e, ev.RunStarted) for e in events), "nothing ran"
    assert [r["amp_ssim"] for r in again.rows] == [r["amp_ssim"] for r in local.rows]


def test_failures_on_dask_are_rows_with_the_local_reasons(cluster, tmp_path):
    names = ["dummy_raising", "dummy_dying", "dummy_sleeping"]
    result, _ = _compare(tmp_path, "dask", cluster[0].scheduler_address, generators=names, options=[], timeout=2)
    reasons = {r.run: r.reason for r in result.runs}
    assert result.exit_code == 1
    assert reasons == {
        "dummy_raising": "RuntimeError: dummy failure in fit",
        "dummy_dying": "child process exited with code 3",
        "dummy_sleeping": "timeout after 2 s",
    }
    for name in names:
        record = rundir.RunRecord.read(tmp_path / "runs" / name)
        assert record.status == "failed" and not (tmp_path / "runs" / name / rundir.DONE).exists()


def test_a_worker_killed_under_its_task_is_retried_and_the_others_finish(cluster, tmp_path):
    _, client = cluster
    killed = []

    def kill_the_worker_of(run):
        def on_event(event):
            if isinstance(event, ev.RunStarted) and event.run == run and not killed:
                (address,) = [a for a, keys in client.processing().items() if any(run in str(k) for k in keys)]
                pid = client.run(os.getpid, workers=[address])[address]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            events.append(event)

        return on_event

    events = []
    names = ["dummy_sleeping", "dummy_intensity"]
    result = compare.run(
        names, host=_host(), out=tmp_path, simulate=TINY, epochs=1, executor="dask",
        scheduler=cluster[0].scheduler_address, options=["dummy_sleeping.seconds=1"],
        on_event=kill_the_worker_of("dummy_sleeping"),
    )  # fmt: skip
    assert killed, "the sleeping run's worker was found and killed"
    assert result.exit_code == 0 and all(r.ok for r in result.runs), [(r.run, r.reason) for r in result.runs]
    notes = [e.text for e in events if isinstance(e, ev.Note)]
    assert "dummy_sleeping: started again on another worker (its worker died)" in notes
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next tests


class _Future:
    """A finished Dask future whose task raised `exc` (enough of `distributed.Future` for `_finish`)."""

    status = "error"

    def __init__(self, exc):
        self.exc = exc

    def exception(self):
        return self.exc


def test_a_task_killed_on_every_try_is_a_failed_row_with_its_folder(tmp_path):
    layout = rundir.Layout(tmp_path)
    spec = executors.RunSpec(name="fno", hash="abc", job={}, child_env={})
    session = dask_executor._Session(None, [spec], layout, 0.0, lambda e: None)
    session._finish(_Future(distributed.KilledWorker("ptycho-run-fno", "tcp://w:1", 3)), spec)
    outcome = session.outcomes["fno"]
    assert outcome == supervise.Outcome(ok=False, reason="its Dask worker died (4 attempt(s); KilledWorker)")
    record = rundir.RunRecord.read(layout.run_dir("fno"))
    assert record.status == "failed" and record.reason == outcome.reason and record.hash == "abc"


def test_executor_settings_are_checked_before_any_work(tmp_path):
    from ptycho_core.errors import UsageError

    with pytest.raises(UsageError, match="--scheduler needs --executor dask"):
        _compare(tmp_path, "local", "tcp://nowhere:8786", generators=["dummy_intensity"], options=[])
    with pytest.raises(UsageError, match=r"--executor: 'slurm' is not one of \['local', 'dask'\]"):
        _compare(tmp_path, "slurm", generators=["dummy_intensity"], options=[])
    assert not (tmp_path / "data").exists()


def test_a_factory_refusing_an_option_on_a_worker_stops_the_comparison_as_bad_usage(cluster, tmp_path):
    from ptycho_core.errors import UsageError

    with pytest.raises(UsageError, match="rate must be positive"):
        _compare(tmp_path, "dask", cluster[0].scheduler_address, generators=["dummy_intensity"],
                 options=["dummy_intensity.rate=-1"])  # fmt: skip
    assert not (tmp_path / "runs" / "dummy_intensity").exists(), "bad usage is not a row"


def test_ctrl_c_on_the_client_stops_the_tasks_children_and_writes_the_report(cluster, tmp_path):
    def interrupt_when_started(event):
        if isinstance(event, ev.RunStarted):
            raise KeyboardInterrupt

    result = compare.run(
        ["dummy_sleeping"], host=_host(), out=tmp_path, simulate=TINY, epochs=1, executor="dask",
        scheduler=cluster[0].scheduler_address, on_event=interrupt_when_started,
    )  # fmt: skip
    assert result.exit_code == compare.INTERRUPTED_EXIT and result.report.is_file()
    assert [(r.status, r.reason) for r in result.runs] == [("failed", "interrupted")]
    record = rundir.RunRecord.read(tmp_path / "runs" / "dummy_sleeping")
    assert record.status == "failed" and record.reason == "interrupted", "the task ended its child and said why"
