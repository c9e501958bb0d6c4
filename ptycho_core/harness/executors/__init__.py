"""Executors: how a comparison's runs are run (docs/design.md#scaling).

An executor turns `RunSpec`s (plain data, `runspec.py`) into finished run folders and one
`supervise.Outcome` per run, and reports progress as `harness.events`. Scoring, the report and
resume never know which executor ran a run.

    local.py   spawned children on this machine, `--jobs` at a time (the default)
    dask.py    one Dask task per run on a `distributed` cluster (`--scheduler ADDRESS`, or a
               LocalCluster on this machine); each task runs the same spawned child on its worker

`create(request)` checks the request's executor settings (before any work) and returns one,
started on first use; use it as a context manager (`with executor: executor.run(...)`).
"""

from __future__ import annotations

from typing import Protocol

from ptycho_core.errors import UsageError
from ptycho_core.harness.executors.runspec import RunSpec, run_spec

#: The executors `--executor` accepts.
EXECUTORS = ("local", "dask")

__all__ = ["EXECUTORS", "Executor", "RunSpec", "create", "run_spec"]


class Executor(Protocol):
    """What `harness.compare.run` needs from an executor."""

    name: str
    #: Threads per run for the provenance block (0: decided on each worker).
    threads: int

    def run(self, runs: list[RunSpec], layout, *, timeout: float, on_event) -> dict:
        """Run every RunSpec; return {name: supervise.Outcome}. A usage error raised by a run
        (a factory refusing an option) stops the others and is raised as UsageError; Ctrl-C ends
        the unfinished runs as interrupted outcomes."""

    def close(self) -> None:
        """Release what the executor started (a cluster, a client)."""


def create(request) -> Executor:
    """The executor a CompareRequest asks for (`executor`, `scheduler`, `jobs`); UsageError for
    an unknown name, a scheduler without the dask executor, or dask not installed."""
    name = request.executor or "local"
    if name not in EXECUTORS:
        raise UsageError(f"--executor {name!r} is not known (choose from {', '.join(EXECUTORS)})")
    if name == "local":
        if request.scheduler:
            raise UsageError("--scheduler needs --executor dask")
        # lazy: loaded when listing; the target imports numpy
        from ptycho_core.harness.executors.local import LocalExecutor

        return LocalExecutor(jobs=request.jobs)
    from ptycho_core.harness.executors.dask import DaskExecutor  # lazy: loaded when listing; the target imports numpy

    return DaskExecutor(scheduler=request.scheduler, workers=request.jobs if request.jobs > 1 else None)
