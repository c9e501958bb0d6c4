"""Soak: many comparisons of the numpy dummies, each SIGKILLed at random moments and resumed until
it completes; then every folder must be complete and every finished run in the results database
exactly once (`ptycho_core.testing.consistency`). Prints figures; exit 1 on any problem.

    .venv/bin/python benchmarks/soak_kill.py                 # 50 comparisons (about 10 min on 2 cores)
    .venv/bin/python benchmarks/soak_kill.py --comparisons 10 --seed 3 --keep /tmp/soak

Each attempt runs `ptycho compare` (with the dummies: `python -m ptycho_core.testing.cli`) on tiny
simulated data, two runs at a time; with probability --kill-chance the parent gets SIGKILL after a
random delay up to --kill-within seconds (a kill that lands after the command ended is counted as
such). After every kill the folder is checked at once, and the killed parent's children must be
gone within 30 s (they die with it). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ptycho_core.testing.consistency import database_problems, folder_problems

GENERATORS = ("dummy_intensity", "dummy_supervised", "dummy_iterative")
TINY = ["--sim", "patch_size=16", "--sim", "object_size=48", "--sim", "step=4", "--sim", "train_objects=1"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kill-chance", type=float, default=0.7, help="chance that an attempt is killed")
    parser.add_argument("--kill-within", type=float, default=8.0, help="latest kill, seconds after the start")
    parser.add_argument("--keep", default=None, help="folder to keep the comparisons and database in")
    return parser.parse_args(argv)


def command(out: Path, db: Path, rng: random.Random) -> list[str]:
    """A comparison of two or three dummies, 1-3 epochs, one or two seeds (fixed per folder)."""
    generators = rng.sample(GENERATORS, rng.choice((2, 3)))
    args = ["compare", "-g", ",".join(generators), *TINY, "--epochs", str(rng.randint(1, 3))]
    args += ["--seeds", str(rng.choice((1, 2))), "--jobs", "2", "--out", str(out), "--db", str(db)]
    return [sys.executable, "-m", "ptycho_core.testing.cli", *args]


def attempt(cmd: list[str], kill_at: float | None) -> dict:
    """Run one attempt; SIGKILL the parent at `kill_at` seconds if it still runs."""
    import psutil

    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed, orphans = False, 0
    if kill_at is not None:
        try:
            proc.wait(timeout=kill_at)
        except subprocess.TimeoutExpired:
            children = psutil.Process(proc.pid).children(recursive=True)
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            _, alive = psutil.wait_procs(children, timeout=30)
            orphans = len(alive)
            for child in alive:
                child.kill()
    output, _ = proc.communicate()
    return {
        "killed": killed,
        "code": proc.returncode,
        "seconds": time.monotonic() - start,
        "output": output,
        "reused": output.count(": reusing runs/"),
        "orphans": orphans,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ptycho-soak-"))
    base.mkdir(parents=True, exist_ok=True)
    db = base / "results.db"
    folders, problems = [], []
    totals = {"attempts": 0, "kills": 0, "late kills": 0, "reused": 0, "orphans": 0, "failed attempts": 0}
    started = time.monotonic()
    for index in range(args.comparisons):
        out = base / f"cmp-{index:02d}"
        cmd = command(out, db, rng)
        while True:
            totals["attempts"] += 1
            kill_at = rng.uniform(0.2, args.kill_within) if rng.random() < args.kill_chance else None
            result = attempt(cmd, kill_at)
            totals["reused"] += result["reused"]
            totals["orphans"] += result["orphans"]
            found = folder_problems(out, finished=not result["killed"])
            problems += [f"attempt {totals['attempts']}: {p}" for p in found]
            if result["killed"]:
                totals["kills"] += 1
                continue
            if kill_at is not None:
                totals["late kills"] += 1
            if result["code"] == 0:
                break
            totals["failed attempts"] += 1
            problems.append(f"{out}: exit {result['code']} without a kill:\n{result['output'][-2000:]}")
            break
        folders.append(out)
        print(f"{out.name}: done after {totals['attempts']} attempts so far ({totals['kills']} kills)", flush=True)
    wall = time.monotonic() - started
    finished = [f for f in folders if (f / "metrics.json").exists()]
    problems += database_problems(db, finished)
    runs = sum(len(list((f / "runs").glob("*/DONE"))) for f in finished)
    print()
    print(f"soak: {len(finished)}/{args.comparisons} comparisons finished, {runs} runs, seed {args.seed}")
    print(
        f"  attempts {totals['attempts']}, SIGKILLs {totals['kills']} (+{totals['late kills']} after the end), "
        f"runs reused on resume {totals['reused']}, orphaned children {totals['orphans']}, "
        f"failed attempts {totals['failed attempts']}"
    )
    print(f"  wall {wall:.0f} s, {wall / max(len(folders), 1):.1f} s per comparison")
    print(f"  problems: {len(problems)}")
    for problem in problems[:20]:
        print(f"    {problem}")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if problems or len(finished) != args.comparisons or totals["orphans"] else 0


if __name__ == "__main__":
    sys.exit(main())
