"""Refined rows against the iterative reference rows: the issue-22 target, and settings to choose from.

Usage: python benchmarks/bench_refine.py DIR [--try rpie:10 --try rpie:20 --try lsqml:20 ...]
                                             [--option KEY=VALUE ...] [--threads 2]

DIR is a finished `ptycho compare --refine ...` folder (e.g. `ptycho compare --refine rpie:20
--out DIR`). Printed:

1. The target, from DIR's metrics.json: the best iterative row and the best refined row (each by
   amplitude + phase SSIM), their SSIMs, the differences, and the refined row's `recon s`
   (learned inference + stitching + start + refinement, training excluded) as a share of the
   iterative row's. Met when both SSIMs are within 0.005 and the share is at most 1/3.
2. With `--try ENGINE[:ITERATIONS]` (repeatable): every learned run of DIR refined again in this
   process with each setting (`ptycho_core.refine.refine_patches`, the path of the refined rows),
   printing amplitude / phase SSIM and seconds at the checkpoints (`quality_time.checkpoints`), so
   that a setting can be chosen without a new comparison. `--option` sets engine options. Times
   are wall seconds of the stitching, the start and the engine (the learned inference is DIR's).

Say under what load you measured (`uptime`): times on a shared machine are not idle times.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def target(rows: list[dict]) -> list[str]:
    """The lines of part 1 (no numbers without both an iterative and a refined row)."""

    def score(r):
        return (r.get("amp_ssim") or 0.0) + (r.get("phase_ssim") or 0.0)

    ok = [r for r in rows if r.get("status") == "ok" and r.get("amp_ssim") is not None]
    iterative = max((r for r in ok if r.get("kind") == "iterative"), key=score, default=None)
    refined = max((r for r in ok if r.get("kind") == "refined"), key=score, default=None)
    if iterative is None or refined is None:
        return ["target: needs a successful iterative row and a refined row (ptycho compare --refine ...)"]
    d_amp = refined["amp_ssim"] - iterative["amp_ssim"]
    d_phase = refined["phase_ssim"] - iterative["phase_ssim"]
    share = refined["reconstruct_seconds"] / iterative["reconstruct_seconds"]
    met = d_amp >= -0.005 and d_phase >= -0.005 and share <= 1 / 3
    lines = []
    for label, r in (("best iterative", iterative), ("best refined", refined)):
        lines.append(
            f"{label:15s} {r['generator']:22s} amp {r['amp_ssim']:.3f}  phase {r['phase_ssim']:.3f}  "
            f"recon s {r['reconstruct_seconds']:.2f}"
            + (
                f" (start {r['start_seconds']:.2f} + refine {r['refine_seconds']:.2f})"
                if r.get("start_seconds")
                else ""
            )
        )
    lines.append(
        f"difference      amp {d_amp:+.3f}  phase {d_phase:+.3f}  time share {share:.2f} "
        f"(target: both >= -0.005, share <= 0.33): {'met' if met else 'not met'}"
    )
    return lines


def try_settings(folder: Path, settings: list[str], options: list[str]) -> None:
    """Part 2: refine every learned run of `folder` with each setting and print its curve."""
    import numpy as np

    from ptycho_core import pipeline, quality_time, refine
    from ptycho_core.generator import TrainConfig
    from ptycho_core.harness.prepared import load_prepared
    from ptycho_core.plugins import PluginHost
    from ptycho_core.simulate import SimConfig, simulate_pair

    registry = PluginHost.from_environment().registry()
    prepared = load_prepared(folder / "data")  # the children's test data: no ground truth
    payload = json.loads((folder / "metrics.json").read_text())
    simulation = payload.get("provenance", {}).get("data", {}).get("simulation")
    test = prepared.test
    if simulation:  # simulated: the same test scan again, with its ground truth for the SSIMs
        truth = simulate_pair(SimConfig(**simulation))[1]
        if truth.n == test.n and np.allclose(truth.positions, test.positions):
            test = truth
    given = dict(o.split("=", 1) for o in options)
    learned = [r for r in payload["runs"] if r.get("kind") == "learned" and r.get("status") == "ok"]
    for run in learned:
        with np.load(folder / run["run_dir"] / "recon.npz", allow_pickle=False) as z:
            patches = z["patches"]
        base = pipeline.stitch_and_score(patches, test).metrics
        print(
            f"\n{run['run']}: learned {base.get('amp_ssim', float('nan')):.3f} / {base.get('phase_ssim', float('nan')):.3f}"
            f" at {run['reconstruct_seconds']:.2f} s"
        )
        for text in settings:
            setting = refine.parse(text)
            spec = refine.engine_spec(registry, setting)
            opts = refine.engine_options(spec, setting, given)
            t0 = time.perf_counter()
            _, estimate, times = refine.refine_patches(
                spec,
                opts,
                patches,
                test,
                TrainConfig(device="cpu", seed=0),
                snapshot_iterations=quality_time.checkpoints(opts.get("iterations", 1)),
            )
            wall = time.perf_counter() - t0
            offset = run["reconstruct_seconds"] + times["stitch_seconds"]
            points = quality_time.curve(estimate.snapshots, estimate.history.to_dict(), test, offset=offset)
            curve = "  ".join(
                f"{p['iteration']}: {p.get('amp_ssim', float('nan')):.3f}/{p.get('phase_ssim', float('nan')):.3f} "
                f"@{p['seconds']:.2f}s"
                for p in points
            )
            print(f"  {text:12s} (wall {wall:.1f} s)  {curve}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--try", dest="settings", action="append", default=[], metavar="ENGINE[:ITERATIONS]")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    payload = json.loads((args.folder / "metrics.json").read_text())
    print("\n".join(target(payload["rows"])))
    if args.settings:
        try_settings(args.folder, args.settings, args.option)
    return 0


if __name__ == "__main__":
    sys.exit(main())
