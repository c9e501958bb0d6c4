"""Write and read times of one dataset in each format (ptycho .npz, CXI, Ptychodus pair).

Usage: python benchmarks/bench_formats.py [--rounds 5] [--patterns 0]

Simulates the DEFAULT_SIM training data (or its first --patterns patterns), then, round after
round, writes and reads it in every format in turn (interleaved, so load on the machine hits
every format alike) and prints the median and range of each, the file size, and whether the
round trip agrees (amplitudes to 1e-6, positions to 1e-9 px, probe exactly).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ptycho_core.io import load_dataset, save_dataset
from ptycho_core.plugins import PluginHost
from ptycho_core.simulate import DEFAULT_SIM, simulate

FILES = {"npz": "scan.npz", "cxi": "scan.cxi", "ptychodus": "scan-product.h5"}


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name.replace("product", "*")))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--patterns", type=int, default=0, help="use the first P patterns (0: all)")
    args = parser.parse_args(argv)
    ds = simulate(DEFAULT_SIM)
    if args.patterns:
        ds = ds.subset(np.arange(min(args.patterns, ds.n)))
    registry = PluginHost(load="").registry()
    times = {(fmt, op): [] for fmt in FILES for op in ("write", "read")}
    exact = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for fmt, name in FILES.items():
                path = Path(tmp) / name
                start = time.perf_counter()
                save_dataset(ds, path)
                times[fmt, "write"].append(time.perf_counter() - start)
                start = time.perf_counter()
                back = load_dataset(path, registry)
                times[fmt, "read"].append(time.perf_counter() - start)
                exact[fmt] = bool(
                    np.allclose(back.diffraction, ds.diffraction, rtol=1e-6)
                    and np.allclose(back.positions, ds.positions, atol=1e-9)
                    and np.array_equal(back.probe, ds.probe)
                )
        sizes = {fmt: _size(Path(tmp) / name) for fmt, name in FILES.items()}
    n = ds.patch_size
    print(f"{ds.n} patterns of {n}x{n} ({ds.diffraction.nbytes / 1e6:.1f} MB of float32), {args.rounds} rounds")
    print(f"{'format':<10} {'write s (min..max)':<24} {'read s (min..max)':<24} {'MB':>6}  round trip")
    for fmt in FILES:
        cells = []
        for op in ("write", "read"):
            t = times[fmt, op]
            cells.append(f"{statistics.median(t):.3f} ({min(t):.3f}..{max(t):.3f})")
        state = "agrees" if exact[fmt] else "DIFFERS"
        print(f"{fmt:<10} {cells[0]:<24} {cells[1]:<24} {sizes[fmt] / 1e6:>6.1f}  {state}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
