"""The stable_hybrid "collapse" study: train generators on the lines data, score them with the core's
metrics, and measure how many predicted patches are the twin image of the truth.

Usage (from the repository root, plugin installed):
    python plugins/ptycho_fno/studies/twin_study.py --runs stable_hybrid:1:0,hybrid:1:0 \
        [--patch-size 64] [--epochs 30] [--option NAME.key=value ...] [--json out.json]

Each run is GENERATOR:GRIDSIZE:SEED, trained through the real engine (factory -> TorchGenerator.fit
with TrainConfig defaults but --epochs and patience 0), predicted on the test scan (anchors), stitched
(probe_weighted) and scored (ptycho_core.metrics). Extra columns:
    twin%     share of test patches whose amplitude correlates better with the twin of the
              ground-truth patch, conj(o(-r)), than with the patch itself (probe-disk pixels)
    corr      mean amplitude correlation with the ground-truth patch (with its twin)
    contrast  mean spatial std/mean of the predicted patch amplitude over the probe disk
    ssim/tw   amplitude SSIM after replacing each twin patch by its twin (an oracle: how good the
              patches are modulo the twin ambiguity)
    avg:      (gridsize > 1) amplitude SSIM and contrast of the anchors after the overlap average
              the training loss sees (the contract scores the raw per-channel patches)
With a point-symmetric probe (both built-in probes: |P(-r)| = |P(r)|) a single diffraction pattern
cannot tell an object patch from its twin; only the overlap constraint (gridsize > 1) can.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def run_one(name: str, gridsize: int, seed: int, options: dict, args, data) -> dict:
    from ptycho_fno.twin import twin_image, twin_scores

    from ptycho_core.generator import TrainConfig
    from ptycho_core.pipeline import predict_anchors, prepare, stitch_and_score
    from ptycho_core.plugins import PluginHost

    train_ds, test_ds = data
    spec = PluginHost.from_environment().registry().generator(name)
    prepared = prepare(train_ds, test_ds, gridsize=gridsize, seed=0, supervised=spec.supervised)
    gen = spec.load_factory()(**spec.resolve_options(options))
    config = TrainConfig(epochs=args.epochs, seed=seed, patience=0, device="cpu", lr=args.lr)
    t0 = time.perf_counter()
    history = gen.fit(prepared.train, prepared.val, config, lambda event: None)
    seconds = time.perf_counter() - t0
    patches = predict_anchors(gen, test_ds, prepared.test_groups)
    if args.save:
        gen.save(f"{args.save}/{name}-g{gridsize}-seed{seed}")
    averaged_ssim = float("nan")
    averaged_contrast = float("nan")
    channel_contrast: list = []
    if gridsize > 1:
        from ptycho_fno.twin import amplitude_contrast

        from ptycho_core import physics
        from ptycho_core.pipeline import predict_groups

        groups = prepared.test_groups
        full = predict_groups(gen, test_ds.diffraction[groups.indices], groups.offsets)
        averaged = physics.overlap_average(full, groups.offsets, prepared.train.canvas_size)[:, 0]
        averaged_ssim = stitch_and_score(averaged, test_ds).metrics["amp_ssim"]
        averaged_contrast = amplitude_contrast(averaged, test_ds.probe)
        channel_contrast = [amplitude_contrast(full[:, k], test_ds.probe) for k in range(full.shape[1])]
    diag = twin_scores(patches, test_ds.gt_patches(), test_ds.probe)
    is_twin = diag["is_twin"]
    resolved = np.where(is_twin[:, None, None], twin_image(patches, test_ds.probe), patches)
    scores = stitch_and_score(patches, test_ds).metrics
    oracle = stitch_and_score(resolved, test_ds).metrics
    return {
        "generator": name,
        "gridsize": gridsize,
        "seed": seed,
        "epochs": len(history.loss),
        "seconds": seconds,
        "loss": history.loss[-1],
        "val_loss": history.val_loss[-1],
        "amp_ssim": scores["amp_ssim"],
        "phase_ssim": scores["phase_ssim"],
        "twin_fraction": float(is_twin.mean()),
        "corr_gt": float(diag["corr_truth"].mean()),
        "corr_twin": float(diag["corr_twin"].mean()),
        "contrast": float(diag["contrast"].mean()),
        "amp_ssim_twin_resolved": oracle["amp_ssim"],
        "amp_ssim_overlap_averaged": averaged_ssim,
        "contrast_overlap_averaged": averaged_contrast,
        "contrast_per_channel": channel_contrast,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="comma list of GENERATOR:GRIDSIZE:SEED")
    parser.add_argument("--patch-size", type=int, default=64)
    parser.add_argument("--object-size", type=int, default=128)
    parser.add_argument("--probe", default="disk", choices=("disk", "focused"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--option", action="append", default=[], help="NAME.key=value")
    parser.add_argument("--json", default="", help="append one JSON line per run to this file")
    parser.add_argument("--save", default="", help="save each trained generator under this folder")
    args = parser.parse_args(argv)

    import torch

    from ptycho_core.simulate import SimConfig, simulate_pair

    if args.threads:
        torch.set_num_threads(args.threads)
    options: dict = {}
    for item in args.option:
        key, _, value = item.partition("=")
        gen_name, _, opt = key.partition(".")
        options.setdefault(gen_name, {})[opt] = value
    data = simulate_pair(SimConfig(patch_size=args.patch_size, object_size=args.object_size, probe=args.probe))
    print(f"# lines N={args.patch_size} object {args.object_size} probe {args.probe}, {args.epochs} epochs")
    print(f"# ground-truth patch contrast: {_gt_contrast(data[1]):.3f}")
    for item in args.runs.split(","):
        name, gridsize, seed = item.split(":")
        r = run_one(name, int(gridsize), int(seed), options.get(name, {}), args, data)
        print(
            f"{r['generator']:<14} g{r['gridsize']} seed {r['seed']}  amp_ssim {r['amp_ssim']:.3f}  "
            f"phase_ssim {r['phase_ssim']:.3f}  twin {100 * r['twin_fraction']:5.1f}%  "
            f"corr {r['corr_gt']:+.2f} ({r['corr_twin']:+.2f})  contrast {r['contrast']:.3f}  "
            f"ssim/tw {r['amp_ssim_twin_resolved']:.3f}  avg: ssim {r['amp_ssim_overlap_averaged']:.3f} "
            f"contrast {r['contrast_overlap_averaged']:.3f} per channel "
            f"{'/'.join(f'{v:.2f}' for v in r['contrast_per_channel'])}  val {r['val_loss']:.4f}  {r['seconds']:.0f}s",
            flush=True,
        )
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(r) + "\n")
    return 0


def _gt_contrast(ds) -> float:
    from ptycho_fno.twin import amplitude_contrast

    return amplitude_contrast(ds.gt_patches(), ds.probe)


if __name__ == "__main__":
    raise SystemExit(main())
