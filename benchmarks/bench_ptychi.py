"""Our `lsqml` generator against pty-chi's LSQML called directly, in one process, on the same data.

Usage: python benchmarks/bench_ptychi.py [--patterns 512] [--patch-size 64] [--epochs 50]
                                         [--repeats 1] [--threads 0]

Data: a PtychoPINN-like simulation from `ptycho_core.simulate` (lines object, aberrated probe,
DEFAULT_SIM's noise) at N = `--patch-size`, raster step N/10, with the scan grown until the test
scan holds `--patterns` patterns (the first ones are kept). Both runs use LSQML with the same
settings (minibatch 64, object step 1, the probe as given, Gaussian noise model, seed 0) for
`--epochs` epochs:

- pty-chi alone: set up as pty-chi's documentation does it (positions centred on their mean,
  the default SUPPORT position origin, an object of ones of `get_suggested_object_size`); its
  object is then cut to the scan's object grid by pty-chi's own origin arithmetic;
- ours: `ptycho_core.pipeline.reconstruct_scan` with the `lsqml` generator (the same code path
  as `ptycho compare` and `ptycho reconstruct --generator lsqml`).

Both objects are scored by `pipeline.score_whole_object` (the metrics of every compare row).
Times are wall seconds of the reconstruction alone (data set-up included for both, imports not);
with `--repeats` > 1 the two alternate and medians are printed. Prints a table; no assertions.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time


def simulate(patterns: int, n: int):
    """The test Dataset of a lines simulation with at least `patterns` patterns (the first kept)."""
    import math

    from ptycho_core.simulate import DEFAULT_SIM, simulate_pair

    step = n / 10
    side = math.ceil(math.sqrt(patterns))
    size = int(n + (side - 1) * step + 2)
    _, test = simulate_pair(DEFAULT_SIM.replace(patch_size=n, object_size=size, step=step, train_objects=1))
    return test.subset(slice(0, patterns)) if test.n > patterns else test


def run_ptychi_alone(ds, epochs: int) -> tuple:
    """(object on the dataset's grid, seconds): pty-chi's LSQML as its getting-started guide sets it up."""
    import numpy as np
    import torch
    from ptychi import api
    from ptychi.api.task import PtychographyTask
    from ptychi.utils import get_suggested_object_size

    start = time.perf_counter()
    n = ds.patch_size
    centre = np.round(ds.positions.mean(axis=0))
    positions = ds.positions - centre
    shape = get_suggested_object_size(positions, (n, n), extra=8)
    options = api.LSQMLOptions()
    options.object_options.optimizable = True
    options.object_options.step_size = 1.0
    options.probe_options.optimizable = False
    options.probe_position_options.optimizable = False
    rec = options.reconstructor_options
    rec.batch_size, rec.num_epochs, rec.random_seed = 64, epochs, 0
    rec.noise_model = api.NoiseModels.GAUSSIAN
    rec.default_device = api.Devices.CPU
    rec.allow_nondeterministic_algorithms = False
    task = PtychographyTask(
        options,
        diffraction_data=(n * ds.diffraction.astype(np.float32)) ** 2,  # intensities, unnormalised FFT
        object_data=torch.ones((1, *shape), dtype=torch.complex64),
        probe_data=ds.probe[None, None],
        probe_position_x_px=positions[:, 1],
        probe_position_y_px=positions[:, 0],
    )
    task.run()
    buffer = task.get_data_to_cpu("object", as_numpy=True)[0]
    seconds = time.perf_counter() - start
    # SUPPORT origin round(S/2) - 1/2, whole-pixel patches starting at round(p) + origin - (N-1)/2:
    # object pixel (i, j) of our grid is buffer pixel (i, j) + round(S/2) - centre.
    top = (np.round(np.asarray(shape) / 2) - centre).astype(int)
    h, w = ds.object.shape
    canvas = np.zeros((h, w), np.complex64)
    ys, xs = slice(max(0, -top[0]), min(h, shape[0] - top[0])), slice(max(0, -top[1]), min(w, shape[1] - top[1]))
    canvas[ys, xs] = buffer[ys.start + top[0] : ys.stop + top[0], xs.start + top[1] : xs.stop + top[1]]
    return canvas, seconds


def run_ours(ds, epochs: int) -> tuple:
    from ptycho_core import pipeline
    from ptycho_core.generator import TrainConfig
    from ptycho_core.plugins import PluginHost

    spec = PluginHost(load="ptycho-ptychi").registry().generator("lsqml")
    options = {"iterations": epochs, "minibatch": 64, "object_step": 1.0, "refine_probe": False}
    _, estimate, seconds = pipeline.reconstruct_scan(spec, options, ds, TrainConfig(device="cpu", seed=0))
    return estimate.object, seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patterns", type=int, default=512)
    parser.add_argument("--patch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)

    import torch
    from ptycho_ptychi._torchvision import ensure_torchvision

    from ptycho_core import pipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    ensure_torchvision()
    import ptychi  # noqa: F401  (imports outside the timed region, for both)

    ds = simulate(args.patterns, args.patch_size)
    runs = {"pty-chi alone": [], "ptycho lsqml": []}
    results = {}
    for k in range(args.repeats):
        order = [("pty-chi alone", run_ptychi_alone), ("ptycho lsqml", run_ours)]
        for name, fn in order if k % 2 == 0 else order[::-1]:
            obj, seconds = fn(ds, args.epochs)
            runs[name].append(seconds)
            results[name] = pipeline.score_whole_object(obj, ds).metrics
            print(f"  {name}: {seconds:.2f} s", file=sys.stderr, flush=True)
    print(
        f"LSQML, {args.epochs} epochs, {ds.n} patterns of {ds.patch_size}x{ds.patch_size}, object "
        f"{ds.object.shape[0]}x{ds.object.shape[1]}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; {args.repeats} repeat(s)"
    )
    print(f"{'run':<15} {'seconds':>8} {'amp SSIM':>9} {'phase SSIM':>11} {'data err':>9}")
    medians = {name: statistics.median(times) for name, times in runs.items()}
    for name, m in results.items():
        print(f"{name:<15} {medians[name]:8.2f} {m['amp_ssim']:9.3f} {m['phase_ssim']:11.3f} {m['data_error']:9.4f}")
    ours, alone = results["ptycho lsqml"], results["pty-chi alone"]
    print(
        f"time ratio ours / pty-chi alone: {medians['ptycho lsqml'] / medians['pty-chi alone']:.3f}; "
        f"SSIM difference amp {ours['amp_ssim'] - alone['amp_ssim']:+.3f}, "
        f"phase {ours['phase_ssim'] - alone['phase_ssim']:+.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
