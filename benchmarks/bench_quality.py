"""Reconstruction quality of every generator next to the published figures (issue 9, item 4).

Usage:
    python benchmarks/bench_quality.py                      # the whole grid (hours on 2 CPU cores)
    python benchmarks/bench_quality.py --lanes default --gridsizes 2 --epochs default --seeds 1

For each lane x gridsize x epochs it runs `ptycho compare` exactly as a user would (each generator
in its own process, `--seeds K`, output under --out/<lane>-g<G>-e<E>/, finished runs reused) and
prints one table: amplitude / phase SSIM as mean +- std over the seeds, training seconds, and the
published figure for the same model and epochs where one exists. Lanes:

    default      DEFAULT_SIM (ptycho_core/simulate.py): N=32, aberrated probe, independent phase,
                 three training objects; the data `make compare` uses
    ptychopinn   a lane like PtychoPINN's lines lane: N=64 `lines`, ideal disk probe, phase from
                 the amplitude (`--sim phase=amplitude`), one training object

`--epochs default` uses each generator's own default budget (its spec's train_defaults). Published
figures (PtychoPINN repository and paper, their N=64/128 lines lanes; gridsize as they ran it):
FNO 3 epochs 0.393 / 0.534, TF PINN 3 epochs 0.483 / 0.345, TF PINN gridsize 1 50 epochs amplitude
0.904, hybrid 50 epochs amplitude 0.925. They are the authors' numbers on their data, shown for
scale: only our own columns are measured here.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

LANES = {
    "default": [],
    "ptychopinn": [
        "patch_size=64",
        "object_size=160",
        "step=6",
        "probe=disk",
        "phase=amplitude",
        "train_objects=1",
    ],
}

#: (generator, epochs) -> (amplitude SSIM, phase SSIM or None), the authors' published figures.
PUBLISHED = {
    ("fno", 3): (0.393, 0.534),
    ("pinn_tf", 3): (0.483, 0.345),
    ("pinn_tf", 50): (0.904, None),
    ("hybrid", 50): (0.925, None),
}


def _ptycho() -> list[str]:
    script = Path(sys.executable).with_name("ptycho")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ptycho_cli"]


def run_cell(args, lane: str, gridsize: int, epochs: str) -> tuple[list[dict], float]:
    """One `ptycho compare` for a lane, gridsize and epoch budget; (rows of metrics.json, wall s)."""
    out = Path(args.out) / f"{lane}-g{gridsize}-e{epochs}"
    cmd = _ptycho() + ["compare", "--out", str(out), "--gridsize", str(gridsize), "--seeds", str(args.seeds)]
    cmd += ["--jobs", str(args.jobs)]
    if args.generators:
        cmd += ["--generators", args.generators]
    if epochs != "default":
        cmd += ["--epochs", epochs]
    for setting in LANES[lane]:
        cmd += ["--sim", setting]
    print(f"# {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL if args.quiet else None)
    wall = time.perf_counter() - start
    table = out / "metrics.json"
    if not table.exists():
        print(f"# {lane} g{gridsize} e{epochs}: no metrics.json (exit {done.returncode})", flush=True)
        return [], wall
    return json.loads(table.read_text())["rows"], wall


def _cell(row: dict, key: str) -> str:
    value = row.get(key)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    std = row.get(f"{key}_std")
    if isinstance(std, (int, float)) and math.isfinite(std):
        return f"{value:.3f} +- {std:.3f}"
    return f"{value:.3f}"


def _published(name: str, epochs) -> str:
    try:
        figures = PUBLISHED.get((name, int(epochs)))
    except ValueError:
        figures = None
    if figures is None:
        return ""
    amp, phase = figures
    return f"{amp:.3f}" + ("" if phase is None else f" / {phase:.3f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generators", default="", help="comma list (default: every available generator)")
    parser.add_argument("--lanes", default="default,ptychopinn", help=f"comma list of {', '.join(LANES)}")
    parser.add_argument("--gridsizes", default="1,2")
    parser.add_argument("--epochs", default="3,20", help="comma list of epoch budgets, or 'default'")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", default="bench-quality", help="folder of the comparisons (reused on re-runs)")
    parser.add_argument("--quiet", action="store_true", help="hide the comparisons' own progress")
    args = parser.parse_args(argv)

    lanes = [lane for lane in args.lanes.split(",") if lane]
    unknown = [lane for lane in lanes if lane not in LANES]
    if unknown:
        parser.error(f"unknown lane(s) {unknown}; known: {', '.join(LANES)}")
    results = []
    for lane in lanes:
        for gridsize in [int(g) for g in args.gridsizes.split(",") if g]:
            for epochs in [e for e in args.epochs.split(",") if e]:
                rows, wall = run_cell(args, lane, gridsize, epochs)
                results += [(lane, gridsize, epochs, row, wall) for row in rows]

    header = (
        f"{'lane':<11} {'g':>1} {'epochs':>7} {'generator':<14} {'amp SSIM':>15} {'phase SSIM':>15} "
        f"{'twin':>5} {'train s':>8}  published amp / phase"
    )
    print(f"\n# {args.seeds} seed(s) per cell, mean +- std; twin = share of test patches nearer their twin")
    print(header)
    for lane, gridsize, epochs, row, _ in results:
        name = row.get("generator", "?")
        epochs_run = row.get("epochs_run")
        shown = epochs if epochs != "default" else f"d{epochs_run:.0f}" if _is_number(epochs_run) else "d"
        twin = row.get("twin_share")
        twin_text = f"{twin:.2f}" if _is_number(twin) else "-"
        train_s = row.get("train_seconds")
        train_text = f"{train_s:.0f}" if _is_number(train_s) else "-"
        status = "" if row.get("status", "ok") == "ok" else f"  [{row.get('status')}: {row.get('reason', '')}]"
        print(
            f"{lane:<11} {gridsize:>1} {shown:>7} {name:<14} {_cell(row, 'amp_ssim'):>15} "
            f"{_cell(row, 'phase_ssim'):>15} {twin_text:>5} {train_text:>8}  "
            f"{_published(name, epochs) if lane == 'ptychopinn' else ''}{status}"
        )
    return 0


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


if __name__ == "__main__":
    sys.exit(main())
