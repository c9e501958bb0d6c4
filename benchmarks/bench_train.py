"""Training and inference throughput of the torch generators (fno, hybrid, stable_hybrid, baseline).

Usage: python benchmarks/bench_train.py [--generators fno,hybrid,stable_hybrid,baseline]
       [--device cpu,cuda] [--precision fp32,bf16] [--steps 3] [--warmup 1] [--patch-size 64]
       [--batch-size 16] [--gridsize 1] [--threads 0] [--option NAME.key=value ...]
       [--infer-batches 16,64] [--reference PATH [--ref-rounds 3] [--ref-steps 10]]

Per generator, device and precision it prints:
  params        trainable parameters (network + global log-scale; a complex weight counts once)
  train grp/s   training throughput: groups per second of full training steps (data, network,
                physics loss, backward, clipping, Adam)
  infer@B       inference throughput: patterns per second (groups x C) of `TorchGenerator.predict`
                called with B groups at a time (it runs its own cache-sized inner passes; bf16
                rows infer in bf16 where the CPU computes bf16 natively)
  GFLOP/s       achieved by a training step, counted by torch.utils.flop_counter.FlopCounterMode,
                which does NOT count FFTs (the forward model runs FFTs, so figures are lower bounds)
  % peak        that rate as a fraction of this machine's matmul peak at the same precision,
                measured in the same run by timing a large torch.matmul
  outside %     share of the step time spent outside the network, each part timed on its own:
                data batching and transfer, the physics loss (overlap constraint when C > 1,
                forward model, Poisson NLL) with its backward to the patches, gradient clipping
                and the Adam step
The default run is short (one warm-up and 3 timed steps per row): use --steps for steadier figures.
With --quality-epochs K it also trains each generator K epochs on DEFAULT_SIM at each precision and prints
the amplitude and phase SSIM each precision reaches, predicting in fp32 and in the precision it trained in.
With --reference PATH (a checkout of PtychoPINN) it also builds the reference's cascaded FNO with our
`fno` architecture and prints ours / reference ratios, paired and interleaved in this process (see
benchmarks/reference_fno.py and docs/speed.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

DEFAULT_GENERATORS = "fno,hybrid,stable_hybrid,baseline"


def _parse_options(items: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        name, dot, opt = key.partition(".")
        if not sep or not dot:
            raise SystemExit(f"--option expects NAME.key=value, got {item!r}")
        out.setdefault(name, {})[opt] = value
    return out


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, steps: int, warmup: int) -> float:
    """Median seconds of `fn()` over `steps` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_peak(device, dtype, size: int) -> float:
    """FLOP/s of a (size x size) @ (size x size) torch.matmul at `dtype` (best of a few runs)."""
    import torch

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = _timed(lambda: torch.matmul(a, b), device, steps=5 if device.type == "cuda" else 3, warmup=1)
    return 2.0 * size**3 / seconds


def bench_one(spec, options: dict, prepared, device, precision: str, args) -> dict:
    """Figures of one generator on one device at one precision (see the module docstring)."""
    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ptycho_core.torch import losses

    train = prepared.train
    c = train.channels
    gen = ready_generator(spec, options, train, device, precision)
    model = gen.model
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    bf16 = precision == "bf16"
    batch = args.batch_size
    count = min(batch, train.n_groups)
    host = {
        "diffraction": torch.from_numpy(np.ascontiguousarray(train.diffraction[:count], dtype=np.float32)),
        "offsets": torch.from_numpy(np.ascontiguousarray(train.offsets[:count])),
    }
    if gen.supervised:
        host["gt"] = torch.from_numpy(np.ascontiguousarray(train.gt_patches[:count], dtype=np.complex64))
    probe = torch.from_numpy(np.ascontiguousarray(train.probe, dtype=np.complex64)).to(device)
    scale, s0, canvas = float(train.input_scale), float(train.s0), int(train.canvas_size)

    def fetch() -> dict:
        return {k: v.to(device, non_blocking=True) for k, v in host.items()}

    def loss_of(b: dict):
        x = b["diffraction"] * scale
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            patches = model(x)
        if gen.supervised:
            return losses.supervised_loss(patches, b["gt"], s0)
        return losses.physics_loss(
            patches, b["diffraction"], probe, scale, offsets=b["offsets"], canvas_size=canvas, kind="poisson"
        )

    def train_step() -> None:
        loss = loss_of(fetch())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    # the parts of a step outside the network, timed on their own
    fixed = fetch()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        detached = model(fixed["diffraction"] * scale).to(torch.complex64)

    def physics_only() -> None:
        patches = detached.clone().requires_grad_(True)
        if gen.supervised:
            loss = losses.supervised_loss(patches, fixed["gt"], s0)
        else:
            loss = losses.physics_loss(
                patches,
                fixed["diffraction"],
                probe,
                scale,
                offsets=fixed["offsets"],
                canvas_size=canvas,
                kind="poisson",
            )
        loss.backward()

    def optimiser_only() -> None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    step_s = _timed(train_step, device, args.steps, args.warmup)
    data_s = _timed(fetch, device, args.steps, args.warmup)
    physics_s = _timed(physics_only, device, args.steps, args.warmup)
    optimiser_s = _timed(optimiser_only, device, args.steps, args.warmup)  # gradients of the last step
    model.eval()

    infer = {}
    for groups in args.infer_batches:
        x = np.ascontiguousarray(train.diffraction[np.arange(groups) % train.n_groups], dtype=np.float32)
        infer[groups] = groups * c / _timed(lambda: gen.predict(x), device, args.steps, args.warmup)  # noqa: B023
    model.train()
    with FlopCounterMode(display=False) as counter:
        train_step()
    flops = counter.get_total_flops()
    return {
        "params": params,
        "groups": count,
        "step_s": step_s,
        "train_groups_s": count / step_s,
        "infer_patterns_s": infer,
        "gflops": flops / 1e9,
        "gflop_s": flops / step_s / 1e9,
        "outside": min(1.0, (data_s + physics_s + optimiser_s) / step_s),
    }


def ready_generator(spec, options: dict, train, device, precision: str):
    """A TorchGenerator of `spec` with a freshly built network (seed 0) ready to `predict` as if
    trained on `train` at `precision`."""
    import torch

    from ptycho_core.torch.trainer import ScaledNetwork

    gen = spec.load_factory()(**spec.resolve_options(options))
    torch.manual_seed(0)
    gen.model = ScaledNetwork(gen.build(train.channels, train.patch_size), train.s0).to(device)
    gen.device = device
    gen.meta = {
        "channels": train.channels,
        "patch_size": train.patch_size,
        "input_scale": float(train.input_scale),
        "s0": float(train.s0),
        "canvas_size": int(train.canvas_size),
        "precision": precision,
    }
    return gen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generators", default=DEFAULT_GENERATORS, help="comma list (unavailable ones are skipped)")
    parser.add_argument("--device", default="", help="comma list of cpu, cuda (default: cpu, plus cuda when available)")
    parser.add_argument("--precision", default="fp32,bf16", help="comma list of fp32, bf16")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per figure (median)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--patch-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16, help="groups per step")
    parser.add_argument("--gridsize", type=int, default=1, help="2 adds the overlap constraint (C = 4)")
    parser.add_argument("--matmul-size", type=int, default=0, help="side of the peak matmul (0: 2048 cpu, 8192 cuda)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--option", action="append", default=[], help="NAME.key=value generator option")
    parser.add_argument(
        "--infer-batches",
        default="16,64",
        help="comma list: groups the caller passes to predict per call, one infer column each (64: compare's)",
    )
    parser.add_argument(
        "--reference",
        default="",
        metavar="PATH",
        help="a checkout of PtychoPINN: also print ours (fno) / reference ratios, paired and interleaved",
    )
    parser.add_argument(
        "--inner-passes",
        default="",
        help="comma list of patterns per inner predict pass to compare (e.g. 4,8,16,32): prints predict "
        "pat/s at batch 64 per generator and precision for each, the measurement behind CPU_INFERENCE_PIXELS",
    )
    parser.add_argument("--ref-rounds", type=int, default=3, help="--reference: rounds per figure")
    parser.add_argument("--ref-steps", type=int, default=10, help="--reference: paired steps per round")
    parser.add_argument(
        "--quality-epochs",
        type=int,
        default=0,
        help="also train each generator this many epochs on DEFAULT_SIM per device and precision and print the "
        "amplitude and phase SSIM each precision reaches (0: skip; 20 takes minutes per row on a CPU)",
    )
    args = parser.parse_args(argv)
    args.infer_batches = [int(b) for b in args.infer_batches.split(",") if b]

    import torch

    from ptycho_core.pipeline import prepare
    from ptycho_core.plugins import PluginHost
    from ptycho_core.simulate import SimConfig, simulate_pair

    if args.threads:
        torch.set_num_threads(args.threads)
    options = _parse_options(args.option)
    registry = PluginHost.from_environment().registry()
    devices = [d for d in (args.device or "cpu,cuda").split(",") if d]
    if not args.device and not torch.cuda.is_available():
        devices = ["cpu"]
    precisions = [p for p in args.precision.split(",") if p]
    sim = SimConfig(patch_size=args.patch_size, object_size=max(128, 2 * args.patch_size), step=4)
    train_ds, test_ds = simulate_pair(sim)
    prepared_cache: dict = {}

    specs = []
    for name in [g for g in args.generators.split(",") if g]:
        try:
            spec = registry.generator(name)
        except Exception as exc:  # noqa: BLE001 - an unknown name is reported and skipped
            print(f"# {name}: skipped ({exc})")
            continue
        if spec.framework != "torch" or not spec.available:
            print(f"# {name}: skipped ({spec.framework}, {spec.status()})")
            continue
        specs.append(spec)

    print(
        f"# N={args.patch_size} gridsize={args.gridsize} batch={args.batch_size} groups, {args.steps} timed steps "
        f"(median), torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    print("# GFLOP/s from torch.utils.flop_counter.FlopCounterMode, which does not count FFTs (lower bounds).")
    infer_cols = "".join(f" {'infer@' + str(b):>9}" for b in args.infer_batches)
    header = (
        f"{'generator':<14} {'dev':<4} {'prec':<4} {'params':>10} {'train grp/s':>11}{infer_cols} "
        f"{'GFLOP/step':>10} {'GFLOP/s':>8} {'% peak':>7} {'outside %':>9}"
    )
    for dev_name in devices:
        if dev_name == "cuda" and not torch.cuda.is_available():
            print("# cuda: not available, skipped")
            continue
        device = torch.device(dev_name)
        size = args.matmul_size or (8192 if device.type == "cuda" else 2048)
        peaks = {}
        for precision in precisions:
            dtype = torch.bfloat16 if precision == "bf16" else torch.float32
            peaks[precision] = matmul_peak(device, dtype, size)
            label = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
            print(f"# {label} {precision} matmul peak ({size}^3): {peaks[precision] / 1e9:.1f} GFLOP/s")
        print(header)
        for spec in specs:
            key = spec.supervised
            if key not in prepared_cache:
                prepared_cache[key] = prepare(train_ds, test_ds, gridsize=args.gridsize, seed=0, supervised=key)
            for precision in precisions:
                try:
                    r = bench_one(spec, options.get(spec.name, {}), prepared_cache[key], device, precision, args)
                except Exception as exc:  # noqa: BLE001 - one failing row must not hide the others
                    print(f"{spec.name:<14} {dev_name:<4} {precision:<4} failed: {type(exc).__name__}: {exc}")
                    continue
                frac = r["gflop_s"] * 1e9 / peaks[precision]
                print(
                    f"{spec.name:<14} {dev_name:<4} {precision:<4} {r['params']:>10,d} {r['train_groups_s']:>11.1f}"
                    + "".join(f" {r['infer_patterns_s'][b]:>9.1f}" for b in args.infer_batches)
                    + f" {r['gflops']:>10.2f} {r['gflop_s']:>8.1f} "
                    f"{100 * frac:>6.1f}% {100 * r['outside']:>8.1f}%"
                )
                sys.stdout.flush()
        if args.quality_epochs:
            quality(specs, options, device, precisions, args.quality_epochs)
    if args.inner_passes:
        inner_sweep(specs, options, prepared_cache, torch.device("cpu"), precisions, args)
    if args.reference:
        from reference_fno import compare

        spec = registry.generator("fno")
        prepared = prepare(train_ds, test_ds, gridsize=1, seed=0, supervised=False)
        fno_options = options.get("fno", {})
        compare(
            args, prepared, ready_generator(spec, fno_options, prepared.train, torch.device("cpu"), "fp32"), fno_options
        )
    return 0


def inner_sweep(specs, options: dict, prepared_cache: dict, device, precisions: list[str], args) -> None:
    """predict pat/s at batch 64 with inner passes of each size in --inner-passes, interleaved."""
    import numpy as np

    from ptycho_core.torch import trainer

    sizes = [int(p) for p in args.inner_passes.split(",") if p]
    print(f"# inner predict passes (patterns of {args.patch_size}^2 per pass), predict at batch 64, pat/s (median)")
    print(f"{'generator':<14} {'prec':<4}" + "".join(f" {str(p) + '/pass':>9}" for p in sizes))
    default = trainer.CPU_INFERENCE_PIXELS
    for spec in specs:
        train = prepared_cache[spec.supervised].train
        x = np.ascontiguousarray(train.diffraction[np.arange(64) % train.n_groups], dtype=np.float32)
        for precision in precisions:
            gen = ready_generator(spec, options.get(spec.name, {}), train, device, precision)
            times = {p: [] for p in sizes}
            for _ in range(args.steps + args.warmup):
                for p in sizes:
                    trainer.CPU_INFERENCE_PIXELS = p * args.patch_size**2
                    start = time.perf_counter()
                    gen.predict(x)
                    times[p].append(time.perf_counter() - start)
            trainer.CPU_INFERENCE_PIXELS = default
            rates = [64 * train.channels / statistics.median(times[p][args.warmup :]) for p in sizes]
            print(f"{spec.name:<14} {precision:<4}" + "".join(f" {r:>9.1f}" for r in rates))
            sys.stdout.flush()


def quality(specs, options: dict, device, precisions: list[str], epochs: int) -> None:
    """Train on DEFAULT_SIM (gridsize 1) and print the SSIM each precision reaches on the test object,
    predicting in fp32 and (bf16 rows) in bf16."""
    from ptycho_core import pipeline
    from ptycho_core.generator import TrainConfig
    from ptycho_core.simulate import DEFAULT_SIM, simulate_pair

    train_ds, test_ds = simulate_pair(DEFAULT_SIM)
    print(f"# quality: DEFAULT_SIM, gridsize 1, {epochs} epochs, default TrainConfig otherwise")
    print(f"{'generator':<14} {'dev':<4} {'prec':<4} {'infer':<5} {'train s':>8} {'amp SSIM':>9} {'phase SSIM':>10}")
    for spec in specs:
        prepared = pipeline.prepare(test_ds=test_ds, train_ds=train_ds, supervised=spec.supervised)
        for precision in precisions:
            config = TrainConfig(epochs=epochs, engine={"precision": precision}, device=device.type)
            gen = spec.load_factory()(**spec.resolve_options(options.get(spec.name, {})))
            start = time.perf_counter()
            gen.fit(prepared.train, prepared.val, config, lambda event: None)
            seconds = time.perf_counter() - start
            for infer in dict.fromkeys(["fp32", precision]):
                gen.meta["precision"] = infer
                patches = pipeline.predict_anchors(gen, test_ds, prepared.test_groups)
                scores = pipeline.stitch_and_score(patches, test_ds).metrics
                print(
                    f"{spec.name:<14} {device.type:<4} {precision:<4} {gen.inference_precision:<5} {seconds:>8.1f} "
                    f"{scores['amp_ssim']:>9.3f} {scores['phase_ssim']:>10.3f}"
                )
                sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
