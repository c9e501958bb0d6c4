"""Recording and querying 10,000 synthetic runs in the SQLite results database.

Usage: python benchmarks/bench_results.py [--runs 10000] [--per-comparison 5] [--repeats 7] [--db FILE]

Records `--runs` runs as comparisons of `--per-comparison` runs each (one transaction per
comparison, as `ptycho compare` does; a fresh temporary SQLite file unless --db), then times the
leaderboard query (best run per generator and dataset by a metric, a window function in SQL),
`ptycho results list` and the export, `--repeats` times each, and prints median, min and max.
Synthetic data: `ptycho_core.testing.results.synthetic_comparison` (5 generators, 3 datasets,
300 days, 6 numbers per run).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ptycho_core.results import queries
from ptycho_core.results.record import write
from ptycho_core.results.store import Store
from ptycho_core.testing.results import synthetic_comparison


def _timed(work, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return times


def _line(label: str, times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return (
        f"{label:<40} median {statistics.median(ms):8.1f} ms   min {min(ms):8.1f}   max {max(ms):8.1f}   (n={len(ms)})"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--per-comparison", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--db", default=None, help="SQLite file or URL (default: a fresh temporary file)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or str(Path(tmp) / "bench.db")
        comparisons = args.runs // args.per_comparison
        with Store.open(db) as store:
            start = time.perf_counter()
            for index in range(comparisons):
                write(store, synthetic_comparison(index, runs=args.per_comparison))
            seconds = time.perf_counter() - start
            total = comparisons * args.per_comparison
            print(
                f"recorded {total} runs in {comparisons} transactions: {seconds:.2f} s ({total / seconds:,.0f} runs/s)"
            )
            board = queries.leaderboard(store, "amp_ssim")
            rows = sum(len(g["rows"]) for g in board["datasets"])
            print(f"leaderboard: {rows} rows over {len(board['datasets'])} datasets")
            print(
                _line(
                    "leaderboard amp_ssim (all)", _timed(lambda: queries.leaderboard(store, "amp_ssim"), args.repeats)
                )
            )
            narrow = queries.Filters(generator="fno,pinn_tf", gridsize=2, since="2026-03-01")
            print(
                _line(
                    "leaderboard data_error (filtered)",
                    _timed(lambda: queries.leaderboard(store, "data_error", narrow), args.repeats),
                )
            )
            print(_line("list (newest 20)", _timed(lambda: queries.list_runs(store), args.repeats)))
            print(_line("export (every run)", _timed(lambda: queries.export_rows(store), max(1, args.repeats // 2))))
        if not args.db:
            print(f"database size: {Path(db).stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
