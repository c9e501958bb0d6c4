"""Supervising the children of a comparison: one spawned process per (generator, seed).

The local executor (`executors.local`) runs every run through `run_children`; the Dask executor
runs each run through it on a worker (one run per task). Each child (`harness.worker.main`) gets
the plain data of a `RunSpec` only and its own pipe for progress events, sent as JSON bytes
(nothing from a child is unpickled, and a killed child cannot block the others). On Linux a child
dies with the process that started it (PR_SET_PDEATHSIG), so a killed parent leaves no orphan.
At most `jobs` children run at once; a child past `timeout` seconds (counted from its start
message, at most START_GRACE seconds after its launch) is killed. Whatever happens, each run ends
as an `Outcome`, and a failed run's partial folder is published as `runs/<name>/` without DONE.
A child that exits with `worker.BAD_USAGE` (a factory refused an option value) ends the
comparison: the others are stopped and its reason is raised as a UsageError (exit code 2).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any

from ptycho_core import rundir
from ptycho_core.errors import UsageError
from ptycho_core.harness import events as ev
from ptycho_core.harness import worker
from ptycho_core.harness.worker import BAD_USAGE, PARENT_GONE, exit_reason

if TYPE_CHECKING:  # annotations only: executors import this module
    from ptycho_core.harness.executors.runspec import RunSpec

#: The reason of a run that a parent interrupt (Ctrl-C) ended or kept from starting.
INTERRUPTED = "interrupted"
#: Seconds a child may take to start (interpreter + imports) before its timeout clock starts anyway.
START_GRACE = 60.0
#: Environment variables that bound a child's thread pools (BLAS and OpenMP; a framework's own
#: variables come from its spec's `child_env`, e.g. "TF_NUM_INTRAOP_THREADS": "{threads}").
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


@dataclass(frozen=True)
class Outcome:
    """How a child ended: ok, or failed with a one-line reason."""

    ok: bool
    reason: str = ""
    usage: bool = False
    interrupted: bool = False


@dataclass
class Child:
    """A running child: its `RunSpec`, process, event pipe (None once closed) and clocks (monotonic)."""

    run: RunSpec
    process: Any
    events: Any
    launched: float
    started: float | None = None
    reported: str | None = None  # the reason the child sent before failing (its error.json may be missing)

    @property
    def name(self) -> str:
        return self.run.name

    def clock_start(self) -> float:
        return self.started if self.started is not None else self.launched + START_GRACE

    def elapsed(self) -> float:
        return time.monotonic() - (self.started or self.launched)


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask when the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def child_environment(spec, threads: int) -> dict[str, str]:
    """Environment variables a child starts with: the thread budget, then the `child_env` of the
    spec, a GeneratorSpec or a RunSpec ("{threads}" in a value becomes the budget)."""
    env = {var: str(threads) for var in THREAD_VARIABLES}
    env.update({k: v.replace("{threads}", str(threads)) for k, v in spec.child_env.items()})
    return env


class Stopped(Exception):
    """`run_children`'s `stop()` said to stop: handled as an interrupt."""


def run_children(runs, layout: rundir.Layout, *, jobs=1, threads=1, timeout=0.0, on_event=ev.ignore, stop=None) -> dict:
    """Run each `RunSpec` in its own spawned child, `jobs` at a time. Returns {name: Outcome}.

    A KeyboardInterrupt in the parent (or `stop()` returning True, checked between waits) kills
    the running children and ends every unfinished run as an "interrupted" outcome
    (`Outcome.interrupted`), so the caller can still report.
    """
    if not runs:
        return {}
    ctx = multiprocessing.get_context("spawn")
    waiting, running, outcomes = list(runs), {}, {}
    on_event(ev.ChildrenStarting(tuple(r.name for r in runs)))
    try:
        while waiting or running:
            if stop is not None and stop():
                raise Stopped
            while waiting and len(running) < jobs:
                child = launch(ctx, waiting.pop(0), layout, threads)
                running[child.name] = child
                on_event(ev.RunStarted(child.name))
            _wait_for_news(running, on_event)
            for child in [c for c in running.values() if _ended(c, timeout)]:
                outcomes[child.name] = _finish(child, layout, timeout, on_event)
                del running[child.name]
                if outcomes[child.name].usage:
                    raise UsageError(outcomes[child.name].reason)
    except (KeyboardInterrupt, Stopped):
        outcomes.update({p.name: Outcome(ok=False, reason=INTERRUPTED, interrupted=True) for p in waiting})
        on_event(ev.Note("interrupted: stopping the running children and writing the report"))
    finally:
        for child in running.values():  # interrupted or failed: leave no child behind
            if child.process.is_alive():
                child.process.kill()
            child.process.join()
            ended = collect(child.run, layout, child.process.exitcode, INTERRUPTED)
            outcomes.setdefault(child.name, Outcome(ok=False, reason=ended.reason, interrupted=True))
        on_event(ev.ChildrenDone())
    return outcomes


def _wait_for_news(running: dict, on_event) -> None:
    pipes = {c.events: c for c in running.values() if c.events is not None}
    ready = wait(list(pipes) + [c.process.sentinel for c in running.values()], timeout=0.2)
    for item in ready:
        if item in pipes:
            receive(pipes[item], on_event)


def _ended(child: Child, timeout: float) -> bool:
    if not child.process.is_alive():
        return True
    return bool(timeout) and time.monotonic() > child.clock_start() + timeout


def _finish(child: Child, layout, timeout: float, on_event) -> Outcome:
    reason = None
    if child.process.is_alive():
        child.process.kill()
        reason = f"timeout after {timeout:g} s"
    child.process.join()
    receive(child, on_event)
    if child.events is not None:
        child.events.close()
    outcome = collect(child.run, layout, child.process.exitcode, reason, reported=child.reported)
    if not outcome.usage:  # bad usage is not a run: the comparison stops with it
        on_event(ev.RunFinished(child.name, outcome.ok, outcome.reason, child.elapsed()))
    return outcome


def launch(ctx, run, layout: rundir.Layout, threads: int) -> Child:
    """Start the child of `run` (a `RunSpec`; its old folders removed first)."""
    rundir.remove(layout.partial_dir(run.name))
    rundir.remove(layout.run_dir(run.name))
    job = {**run.job, "threads": threads}
    receiver, sender = ctx.Pipe(duplex=False)
    args = (job, PipeEvents(sender), os.getpid())
    process = ctx.Process(target=child_main, args=args, name=f"ptycho-{run.name}", daemon=True)
    with environment(child_environment(run, threads)):
        process.start()
    sender.close()
    return Child(run=run, process=process, events=receiver, launched=time.monotonic())


def child_main(job: dict, events, parent_pid: int) -> None:
    """The child's entry point: die with the parent that started it, then `worker.main`."""
    die_with_parent(parent_pid)
    worker.main(job, events)


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent ends (elsewhere: nothing); exit at once
    when the parent is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes  # lazy: only this platform probe needs it

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # no prctl: the pipe still ends an orphan at its next event
            pass
    if os.getppid() != parent_pid:
        os._exit(PARENT_GONE)


class PipeEvents:
    """The child's end of its own pipe: events as JSON bytes."""

    def __init__(self, conn):
        self.conn = conn

    def put(self, event: dict) -> None:
        self.conn.send_bytes(json.dumps(event, default=str).encode())


def receive(child: Child, on_event) -> None:
    """Forward every event waiting in the child's pipe (closing it at end of file)."""
    while child.events is not None:
        try:
            if not child.events.poll():
                return
            event = json.loads(child.events.recv_bytes().decode())
        except (EOFError, OSError, ValueError):
            child.events.close()
            child.events = None
            return
        kind = event.get("type")
        if kind == "started" and child.started is None:
            child.started = time.monotonic()
        elif kind == "progress":
            keys = ("epoch", "epochs", "step", "steps", "loss", "val_loss")
            on_event(ev.RunProgress(child.name, **{k: event.get(k) for k in keys}))
        elif kind == "predicting":
            on_event(ev.RunPredicting(child.name, event.get("status") or "predicting the test groups"))
        elif kind == "failed":
            child.reported = event.get("reason")


def collect(run: RunSpec, layout: rundir.Layout, exitcode, reason: str | None, reported: str | None = None) -> Outcome:
    """The outcome of a finished child (`run`: its RunSpec, for the name and hash); a
    failed run's partial folder becomes runs/<name>/ without DONE, holding run.log, error.json and a
    run.json with status "failed". `reported`: the reason the child sent, used when its error.json
    is missing (a full disk). Writing the failed record may fail too (a full disk): the folder is
    still published without DONE, so a rerun redoes the run."""
    run_dir, partial = layout.run_dir(run.name), layout.partial_dir(run.name)
    if exitcode == BAD_USAGE and reason is None:  # not a row: nothing to keep
        reason = rundir.read_json(partial / rundir.ERROR_JSON).get("reason") or reported or "bad usage"
        shutil.rmtree(partial, ignore_errors=True)
        return Outcome(ok=False, reason=reason, usage=True)
    record = rundir.RunRecord.read(run_dir)
    if reason is None and (run_dir / rundir.DONE).is_file() and record and record.hash == run.hash:
        return Outcome(ok=True)
    if reason is None:
        reason = rundir.read_json(partial / rundir.ERROR_JSON).get("reason") or reported or exit_reason(exitcode)
    failed = rundir.RunRecord(name=run.name, hash=run.hash, status="failed", reason=reason, exitcode=exitcode)
    try:
        partial.mkdir(parents=True, exist_ok=True)
        rundir.write_json(partial / rundir.RUN_JSON, failed.to_dict())
        rundir.publish(partial, run_dir)
    except OSError as exc:  # no space for the record: the folder stays without DONE either way
        reason += f" (its failed record could not be written: {exc.strerror or exc})"
    return Outcome(ok=False, reason=reason)


@contextlib.contextmanager
def environment(values: dict[str, str]):
    """Set environment variables for a `Process.start()` (spawn copies os.environ), then restore."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
