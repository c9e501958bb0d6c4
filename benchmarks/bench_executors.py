"""The local executor against a Dask cluster: one 4-run comparison on each, on this machine.

Usage: python benchmarks/bench_executors.py [--generator fno] [--seeds 4] [--epochs 1]
       [--workers 2] [--repeat 1] [--option NAME.key=value ...] [--noop-tasks 200] [--out DIR]

`--generator dummy_intensity` (the numpy test dummy, runs of about a second) measures the
executors' own overhead; the default (a small fno) gives runs of minutes on 2 cores. With
`--repeat K` the two executors alternate K times and the figures are medians.

It runs the same comparison (DEFAULT_SIM, one generator x `--seeds` seeds = 4 runs by default; a
small fno unless --option is given) twice:
`--executor local --jobs 1`, then `--executor dask` on a LocalCluster of `--workers` single-threaded
worker processes (started beforehand and timed on its own), and prints
  per run     seconds of each run as its executor reports it (RunFinished: the spawned child's wall
              time, torch import included; on Dask the task's time on its worker)
  totals      wall seconds of the execution phase (first run submitted -> last run finished) and
              of the whole comparison (staging, runs, scoring, report), and their ratio local/dask
  scheduler   Dask's own overhead per task: the median round trip of one no-op task, and the
              time per task of `--noop-tasks` no-op tasks submitted at once
  overhead    the executor's overhead per run: Dask execution phase x workers / runs - mean run time
  metrics     whether both executors gave the same metrics (same seeds on CPU; the thread count per
              run differs, cores / jobs here, cores / workers there, so torch's sums may differ in
              the last bits)

How it scales to N machines (written from these figures, not measured on N machines): with R runs
of t_run seconds each, w workers per machine and a per-task overhead t_task (scheduler round trip
plus the spawned child's start, both measured here), the execution phase takes about
    T(N) = ceil(R / (N * w)) * (t_run + t_task)
and the client's own work (staging the data once, scoring every run, the report) is added once; it
does not shrink with N. The script prints T(N) for N = 1, 2, 4, 8, 16 and R = 4 and 64 runs. The
scheduler's share stays negligible while t_run is seconds to hours and t_task milliseconds; what
limits scaling is R / (N w) becoming < 1 (idle workers) and the client's scoring, which is serial.

Measured on the development machine (2 cores shared with four other jobs; noisy): Dask's round trip
10-17 ms per no-op task; executor overhead 0.1-2.6 s per run; 64 small-fno runs of ~160 s would
take ~5,200 s on one 2-worker machine, ~1,300 s on 4, ~330 s on 16 (docs/scale.md, "Measured").
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

#: The default generator's options: a small fno, so that the 8 runs take minutes on 2 cores.
SMALL_FNO = ["fno.width=8", "fno.blocks=1", "fno.cnn_blocks=1"]


def _noop(i):
    return i


def _host(generator: str):
    """The plugin host: installed plugins, plus the numpy dummies for `--generator dummy_*`."""
    from ptycho_core.plugins import PluginHost

    host = PluginHost.from_environment()
    if generator.startswith("dummy_"):
        from ptycho_core.testing import dummies

        host.register(dummies, "ptycho-dummies")
    return host


def _compare(executor: str, out: Path, args, scheduler=None) -> dict:
    """Run one comparison; its result, per-run seconds and threads, and phase timings."""
    from ptycho_core import compare, rundir
    from ptycho_core.harness import events as ev

    marks: dict = {"runs": {}}

    def on_event(event) -> None:
        now = time.perf_counter()
        if isinstance(event, ev.ChildrenStarting):
            marks["first"] = now
        elif isinstance(event, ev.RunFinished):
            marks["runs"][event.run] = event.seconds
            marks["last"] = now

    start = time.perf_counter()
    result = compare.run(
        [args.generator], seeds=args.seeds, epochs=args.epochs, options=list(args.option), executor=executor,
        scheduler=scheduler, jobs=1, out=out, force=True, on_event=on_event, host=_host(args.generator),
    )  # fmt: skip
    threads = {(rundir.RunRecord.read(out / "runs" / r.run).hardware or {}).get("threads") for r in result.runs}
    return {
        "result": result,
        "total": time.perf_counter() - start,
        "execution": marks["last"] - marks["first"],
        "runs": marks["runs"],
        "threads": sorted(threads),
    }


def _scheduler_overhead(client, tasks: int) -> tuple[float, float]:
    """(median round trip of one no-op task, seconds per task of `tasks` no-op tasks at once)."""
    trips = []
    for i in range(20):
        t0 = time.perf_counter()
        client.submit(_noop, i, pure=False).result()
        trips.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    client.gather(client.map(_noop, range(tasks), pure=False))
    return statistics.median(trips), (time.perf_counter() - t0) / tasks


def _print_scaling(t_run: float, t_task: float, workers: int) -> None:
    print(f"\nestimated execution phase on N machines of {workers} workers (T = ceil(R / (N w)) (t_run + t_task)):")
    print(f"  {'N':>3}  {'R=4 runs':>10}  {'R=64 runs':>10}")
    for n in (1, 2, 4, 8, 16):
        cells = [math.ceil(r / (n * workers)) * (t_run + t_task) for r in (4, 64)]
        print(f"  {n:>3}  {cells[0]:>9.1f}s  {cells[1]:>9.1f}s")


def _median(items: list[dict], key: str) -> float:
    return statistics.median(item[key] for item in items)


def _report(args, local: list[dict], dask: list[dict], startup: float, trip: float, per_task: float) -> None:
    """Print medians over the repetitions, the overheads, the metrics check and the scaling table."""
    print(f"{args.generator} x {args.seeds} seeds, {args.epochs} epoch(s), DEFAULT_SIM, {len(local)} repetition(s) "
          "interleaved local/dask; medians")  # fmt: skip
    print(f"{'run':<24} {'local s':>9} {'dask s':>9}")
    for name in local[0]["runs"]:
        cells = [statistics.median(r["runs"].get(name, math.nan) for r in side) for side in (local, dask)]
        print(f"{name:<24} {cells[0]:>9.2f} {cells[1]:>9.2f}")
    for label, key in (("execution phase", "execution"), ("whole comparison", "total")):
        print(f"{label:<24} {_median(local, key):>9.2f} {_median(dask, key):>9.2f}")
    ratios = [a["execution"] / b["execution"] for a, b in zip(local, dask, strict=True)]
    print(f"ratio local --jobs 1 / dask {args.workers} workers (execution phase): median "
          f"{statistics.median(ratios):.2f}x (each repetition: {', '.join(f'{r:.2f}' for r in ratios)})")  # fmt: skip
    print(f"LocalCluster startup: {startup:.1f} s (once per comparison without --scheduler)")
    print(f"Dask scheduler overhead: {trip * 1e3:.1f} ms round trip per no-op task, "
          f"{per_task * 1e3:.2f} ms per task for {args.noop_tasks} at once")  # fmt: skip
    runs = len(local[0]["runs"])
    t_run = statistics.median(v for r in local for v in r["runs"].values())
    t_dask_run = statistics.median(v for r in dask for v in r["runs"].values())
    t_task = max(0.0, _median(dask, "execution") * args.workers / runs - t_dask_run)
    print(f"executor overhead per run on Dask (execution x workers / runs - median run): {t_task:.2f} s")
    gaps = [
        abs(b.metrics.get(key, math.nan) - value) / max(abs(value), 1e-12)
        for a, b in zip(local[0]["result"].runs, dask[0]["result"].runs, strict=True)
        for key, value in a.metrics.items()
        if isinstance(value, float) and math.isfinite(value)
    ]
    worst = max(gaps, default=math.nan)
    print(f"metrics: {'identical' if worst == 0 else f'largest relative difference {worst:.2g}'} "
          f"(threads per run: local {local[0]['threads']}, dask {dask[0]['threads']})")  # fmt: skip
    _print_scaling(t_run, t_task + trip, args.workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default="fno", help="a generator (dummy_intensity: the numpy dummy)")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="interleaved local/dask repetitions (medians)")
    parser.add_argument(
        "--option", action="append", default=None, help=f"NAME.key=value, repeatable (default: {' '.join(SMALL_FNO)})"
    )
    parser.add_argument("--noop-tasks", type=int, default=200)
    parser.add_argument("--out", default=None, help="folder for the comparisons (default: a temporary one)")
    args = parser.parse_args()
    if args.option is None:
        args.option = SMALL_FNO if args.generator == "fno" else []

    from distributed import Client, LocalCluster

    out = Path(args.out or tempfile.mkdtemp(prefix="bench-executors-"))
    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    startup = time.perf_counter() - t0
    local, dask = [], []
    try:
        for _ in range(args.repeat):
            local.append(_compare("local", out / "local", args))
            dask.append(_compare("dask", out / "dask", args, scheduler=cluster.scheduler_address))
        trip, per_task = _scheduler_overhead(client, args.noop_tasks)
    finally:
        client.close()
        cluster.close()
    _report(args, local, dask, startup, trip, per_task)


if __name__ == "__main__":
    main()
