"""The Dask executor: each run is one task on a `distributed` cluster (docs/design.md#scaling).

    ptycho compare --executor dask --scheduler tcp://head:8786 ...   an existing cluster
    ptycho compare --executor dask [--jobs N] ...                    a LocalCluster here: N worker
                                                                     processes (default: one per core)

A task (`run_task`, on a worker) runs the run exactly as the local executor does: one spawned child
(`harness.supervise.run_children`), so neither the client nor the worker process ever imports
torch or TensorFlow, and the child's thread budget is the worker host's cores over the task slots
of the workers on that host. The task forwards the child's progress to the client as Dask events
(`Worker.log_event` on a topic the client subscribes to), kills its child at `timeout`, and
returns the outcome as plain data. Failures become failed rows with a reason: an exception in the
child, a dead child, a timeout, and a worker that died under the task (Dask retries a task whose
worker died on another worker, up to the scheduler's `distributed.scheduler.allowed-failures`;
after that the run is failed with "KilledWorker"). Ctrl-C on the client sets a Dask Event that
the tasks watch: they kill their children and end as interrupted.

Requirements: the workers run the same installation of ptycho and its plugins, and `--out` is on
a filesystem that the client and every worker see at the same path (HPC clusters share one);
the client stages the data there, the workers write their run folders there, and the client
scores them. Workers that Dask starts as daemon processes (the default) may still start children:
the task clears the daemon flag of its worker process (its children die with it anyway).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import queue
import time
import uuid
from pathlib import Path

from ptycho_core import rundir
from ptycho_core.errors import UsageError
from ptycho_core.harness import events as ev
from ptycho_core.harness import supervise
from ptycho_core.harness.executors.runspec import RunSpec

#: Seconds to wait for a scheduler given by address.
CONNECT_TIMEOUT = 20
#: Seconds between two looks at the stop Event from a task.
STOP_POLL = 1.0
#: Seconds the client waits, after Ctrl-C, for the tasks to stop their children.
STOP_GRACE = 15.0
#: Events forwarded from a task to the client (the rest the client makes itself).
FORWARDED = ("RunStarted", "RunProgress", "RunPredicting")


class DaskExecutor:
    """Runs on a Dask cluster: `scheduler` address, or None for a LocalCluster of `workers`
    single-threaded worker processes (default: one per core), started on first use."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None):
        try:
            import distributed  # noqa: F401  # lazy: optional dask extra
        except ImportError:
            raise UsageError(
                "--executor dask needs dask.distributed: pip install 'ptycho[dask]' (or 'dask[distributed]')"
            ) from None
        self.scheduler = scheduler
        self.workers = workers or supervise.usable_cpus()
        self.threads = 0 if scheduler else max(1, supervise.usable_cpus() // self.workers)
        self.client = None
        self.cluster = None

    def connect(self):
        """The client (connecting, or starting the LocalCluster, on first use)."""
        if self.client is not None:
            return self.client
        from distributed import Client, LocalCluster  # lazy: optional dask extra

        if self.scheduler:
            try:
                self.client = Client(self.scheduler, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError, ValueError) as exc:
                raise UsageError(f"--scheduler {self.scheduler}: cannot connect ({exc})") from None
            return self.client
        self.cluster = LocalCluster(
            n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        self.client = Client(self.cluster)
        return self.client

    def run(self, runs, layout, *, timeout: float = 0.0, on_event=ev.ignore) -> dict:
        if not runs:
            return {}
        return _Session(self.connect(), list(runs), layout, timeout, on_event).run()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Session:
    """One `run` on the client: submit a task per run, forward events, collect outcomes."""

    def __init__(self, client, runs: list[RunSpec], layout, timeout: float, on_event):
        self.client, self.runs, self.layout, self.timeout, self.on_event = client, runs, layout, timeout, on_event
        self.topic = f"ptycho-{uuid.uuid4().hex}"
        self.inbox: queue.Queue = queue.Queue()
        self.outcomes: dict = {}
        self.started: dict[str, float] = {}

    def run(self) -> dict:
        from distributed import Event  # lazy: optional dask extra

        stop = Event(f"{self.topic}-stop", client=self.client)
        self.client.subscribe_topic(self.topic, self.inbox.put)
        self.on_event(ev.ChildrenStarting(tuple(r.name for r in self.runs)))
        slots = host_slots(self.client)
        futures = {self._submit(run, stop.name, slots): run for run in self.runs}
        try:
            while len(self.outcomes) < len(self.runs):
                self._forward(wait=0.2)
                for future, run in futures.items():
                    if run.name not in self.outcomes and future.done():
                        self._finish(future, run)
        except KeyboardInterrupt:
            self.on_event(ev.Note("interrupted: stopping the running tasks and writing the report"))
            self._stop(stop, futures, interrupted=True)
        finally:
            if len(self.outcomes) < len(self.runs):  # a usage error: stop the others
                self._stop(stop, futures, interrupted=False)
            self.client.unsubscribe_topic(self.topic)
            self.on_event(ev.ChildrenDone())
        return self.outcomes

    def _submit(self, run: RunSpec, stop_name: str, slots: dict):
        out = str(Path(self.layout.out_dir).resolve())
        key = f"ptycho-run-{run.name}-{self.topic[-8:]}"
        return self.client.submit(
            run_task, run.to_dict(), out, self.timeout, self.topic, stop_name, slots, key=key, pure=False
        )

    def _forward(self, wait: float) -> None:
        """Pass the tasks' events on (dropping late ones of finished runs)."""
        try:
            items = [self.inbox.get(timeout=wait)]
        except queue.Empty:
            return
        while not self.inbox.empty():
            items.append(self.inbox.get_nowait())
        for _, message in items:
            event = event_from_dict(message)
            if event is None or event.run in self.outcomes:
                continue
            if isinstance(event, ev.RunStarted):
                if event.run in self.started:
                    self.on_event(ev.Note(f"{event.run}: started again on another worker (its worker died)"))
                self.started[event.run] = time.monotonic()
            self.on_event(event)

    def _finish(self, future, run: RunSpec) -> None:
        self._forward(wait=0)
        if future.status == "finished":
            result = future.result()
            outcome = supervise.Outcome(**result["outcome"])
            seconds = result["seconds"]
        else:
            reason = task_failure(future)
            outcome = supervise.collect(run, self.layout, None, reason)
            seconds = time.monotonic() - self.started.get(run.name, time.monotonic())
        self.outcomes[run.name] = outcome
        if outcome.usage:
            raise UsageError(outcome.reason)
        self.on_event(ev.RunFinished(run.name, outcome.ok, outcome.reason, seconds))

    def _stop(self, stop, futures: dict, interrupted: bool) -> None:
        """Tell every task to stop its child, wait a little for them, cancel the rest."""
        from distributed import wait  # lazy: optional dask extra

        stop.set()
        pending = [f for f, run in futures.items() if run.name not in self.outcomes]
        wait(pending, timeout=STOP_GRACE, return_when="ALL_COMPLETED") if pending else None
        for future, run in futures.items():
            if run.name in self.outcomes:
                continue
            if future.status == "finished":
                self.outcomes[run.name] = supervise.Outcome(**future.result()["outcome"])
            else:
                self.outcomes[run.name] = supervise.Outcome(
                    ok=False, reason=supervise.INTERRUPTED, interrupted=interrupted
                )
        self.client.cancel(pending)


def task_failure(future) -> str:
    """The row's reason for a task that did not return (its worker died, or the task raised)."""
    from distributed import KilledWorker  # lazy: optional dask extra

    if future.status == "cancelled":
        return "cancelled on the Dask cluster"
    exc = future.exception()
    if isinstance(exc, KilledWorker):
        tries = exc.allowed_failures + 1 if isinstance(exc.allowed_failures, int) else "every"
        return f"its Dask worker died ({tries} attempt(s); KilledWorker)"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"Dask task failed: {type(exc).__name__}{': ' + text if text else ''}"


def host_slots(client) -> dict[str, int]:
    """Task slots (worker threads) per worker host of the cluster."""
    from distributed.comm import get_address_host  # lazy: optional dask extra

    slots: dict[str, int] = {}
    for address, info in client.scheduler_info(n_workers=-1)["workers"].items():
        host = get_address_host(address)
        slots[host] = slots.get(host, 0) + int(info.get("nthreads") or 1)
    return slots


def event_as_dict(event) -> dict:
    """An event as msgpack-able plain data: {"type": class name, **fields}."""
    return {"type": type(event).__name__, **dataclasses.asdict(event)}


def event_from_dict(message) -> object | None:
    """The event of `event_as_dict`, or None for anything that is not a forwarded event."""
    if not isinstance(message, dict) or message.get("type") not in FORWARDED:
        return None
    cls = getattr(ev, message["type"])
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in message.items() if k in names})  # the scheduler adds "worker"


# --- on the worker ---------------------------------------------------------------------------------


def run_task(run: dict, out: str, timeout: float, topic: str, stop_name: str, slots: dict) -> dict:
    """A Dask task: run one RunSpec in a spawned child on this worker; return
    {"outcome": Outcome fields, "seconds": wall time}. Never raises for a failed run."""
    from distributed import Event, get_worker  # lazy: optional dask extra
    from distributed.comm import get_address_host  # lazy: optional dask extra

    worker = get_worker()
    spec = RunSpec.from_dict(run)
    host = get_address_host(worker.address)
    threads = max(1, supervise.usable_cpus() // max(1, slots.get(host, worker.state.nthreads)))
    multiprocessing.current_process()._config["daemon"] = False  # let a daemon worker start the child
    stop = _stop_watch(Event(stop_name))

    def forward(event) -> None:
        if type(event).__name__ in FORWARDED:
            worker.log_event(topic, event_as_dict(event))

    start = time.monotonic()
    layout = rundir.Layout(Path(out))
    try:
        outcomes = supervise.run_children(
            [spec], layout, jobs=1, threads=threads, timeout=timeout, on_event=forward, stop=stop
        )
        outcome = outcomes[spec.name]
    except UsageError as exc:  # a factory refused an option value: the client stops the comparison
        outcome = supervise.Outcome(ok=False, reason=str(exc), usage=True)
    return {"outcome": dataclasses.asdict(outcome), "seconds": time.monotonic() - start, "pid": os.getpid()}


def _stop_watch(event):
    """A `stop()` for `run_children`: whether the client set the stop Event (asked at most once per
    STOP_POLL seconds)."""
    last = {"t": time.monotonic(), "set": False}

    def stop() -> bool:
        now = time.monotonic()
        if not last["set"] and now - last["t"] >= STOP_POLL:
            last["t"] = now
            try:
                last["set"] = bool(event.is_set())
            except Exception:  # the scheduler is unreachable: go on; the run's own limits hold
                pass
        return last["set"]

    return stop
