"""Wall time of `ptycho list-generators` in fresh processes (target: median under 0.3 s).

Usage: python benchmarks/bench_cli.py [--runs 7] [--command "list-generators"] [--core-only]

Runs the installed console script (`.venv/bin/ptycho`, else `python -m ptycho_cli`) once as a
warm-up, then `--runs` times, and prints median, min and max. Every installed plugin is
discovered unless --core-only sets PTYCHO_LOAD_PLUGINS to empty.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.3


def _command() -> list[str]:
    script = Path(sys.executable).with_name("ptycho")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "ptycho_cli"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--command", default="list-generators", help="ptycho arguments to time")
    parser.add_argument("--core-only", action="store_true", help="PTYCHO_LOAD_PLUGINS='' (built-ins only)")
    args = parser.parse_args(argv)

    cmd = _command() + shlex.split(args.command)
    env = dict(os.environ)
    if args.core_only:
        env["PTYCHO_LOAD_PLUGINS"] = ""
    subprocess.run(cmd, env=env, capture_output=True, check=True)  # warm-up: file-system caches
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    scope = "built-ins only" if args.core_only else "all installed plugins"
    print(f"`ptycho {args.command}` ({scope}), {args.runs} fresh processes:")
    print(f"  median {median:.3f} s   min {min(times):.3f} s   max {max(times):.3f} s   (target < {TARGET_S} s)")
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
