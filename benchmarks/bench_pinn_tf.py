"""Training and inference throughput of `pinn_tf` (TensorFlow PtychoPINN) at N = 64.

Usage: python benchmarks/bench_pinn_tf.py [--gridsizes 1,2] [--epochs 2] [--batch-size 16]
                                          [--filter-scale 2] [--patch-size 64] [--max-groups 0]

Data: DEFAULT_SIM (lines object 128 x 128, step 4) with the patch size raised to 64, so 256
patterns. For each gridsize the generator is trained `--epochs` epochs on the prepared groups;
training throughput is measured on the epochs after the first (the first includes tf.function
tracing, reported separately). Inference: `predict` over the test groups at batch 64 after a
warm-up batch. Figures are patterns (= groups x C) per second. Prints a table; no assertions.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time


def _bench_one(gridsize: int, args, train_ds, test_ds) -> dict:
    import numpy as np
    from ptycho_pinn_tf.generator import build_pinn_tf

    from ptycho_core.generator import TrainConfig
    from ptycho_core.pipeline import prepare

    prepared = prepare(train_ds, test_ds, gridsize=gridsize, seed=0, val_fraction=0.1)
    train = prepared.train
    if args.max_groups and train.n_groups > args.max_groups:
        train = train.subset(np.arange(args.max_groups))
    c = gridsize * gridsize
    gen = build_pinn_tf(filter_scale=args.filter_scale)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=1e-3, seed=0, patience=0)
    start = time.perf_counter()
    history = gen.fit(train, prepared.val, config, lambda event: None)
    fit_seconds = time.perf_counter() - start
    steady = history.seconds[1:] or history.seconds
    train_pps = train.n_groups * c / (sum(steady) / len(steady))

    groups = prepared.test_groups
    diffraction = test_ds.diffraction[groups.indices]
    gen.predict(diffraction[:64], groups.offsets[:64])  # warm-up
    start = time.perf_counter()
    gen.predict(diffraction, groups.offsets)
    predict_seconds = time.perf_counter() - start
    return {
        "gridsize": gridsize,
        "C": c,
        "train_groups": train.n_groups,
        "params": gen.model.count_params(),
        "first_epoch_s": history.seconds[0],
        "epoch_s": sum(steady) / len(steady),
        "train_patterns_per_s": train_pps,
        "fit_s": fit_seconds,
        "predict_patterns_per_s": groups.n_groups * c / predict_seconds,
        "loss": history.loss[-1],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gridsizes", default="1,2", help="comma list of gridsizes")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs per gridsize (>= 2 for a steady figure)")
    parser.add_argument("--batch-size", type=int, default=16, help="groups per training step")
    parser.add_argument("--filter-scale", type=int, default=2)
    parser.add_argument("--patch-size", type=int, default=64)
    parser.add_argument("--max-groups", type=int, default=0, help="cap on training groups (0: all)")
    args = parser.parse_args(argv)

    from ptycho_core.simulate import DEFAULT_SIM, simulate_pair

    cfg = DEFAULT_SIM.replace(patch_size=args.patch_size)
    train_ds, test_ds = simulate_pair(cfg)
    from ptycho_pinn_tf.env import keras, tf

    print(
        f"pinn_tf throughput: N={args.patch_size}, filter_scale={args.filter_scale}, batch {args.batch_size}, "
        f"{args.epochs} epochs, {train_ds.n} train / {test_ds.n} test patterns"
    )
    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, GPUs visible: {len(tf.config.list_physical_devices('GPU'))}"
    )
    rows = [_bench_one(int(g), args, train_ds, test_ds) for g in args.gridsizes.split(",")]
    header = (
        f"{'gridsize':>8} {'params':>9} {'groups':>6} {'1st epoch s':>11} {'epoch s':>8} "
        f"{'train pat/s':>11} {'infer pat/s':>11} {'final loss':>10}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['gridsize']:>8} {r['params']:>9,} {r['train_groups']:>6} {r['first_epoch_s']:>11.2f} "
            f"{r['epoch_s']:>8.2f} {r['train_patterns_per_s']:>11.1f} {r['predict_patterns_per_s']:>11.1f} "
            f"{r['loss']:>10.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
