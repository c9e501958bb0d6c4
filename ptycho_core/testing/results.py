"""Synthetic results-database entries (for tests and benchmarks/bench_results.py): comparisons of
made-up runs with seeded scores, over a few generators, datasets, versions, gridsizes and days."""

from __future__ import annotations

import random

from ptycho_core.results.entries import ComparisonEntry, RunEntry

GENERATORS = ("fno", "stable_hybrid", "pinn_tf", "baseline", "ptychovit")
DATASETS = ("a" * 64, "b" * 64, "c" * 64)
DAY = 86400.0
#: Start of the synthetic calendar: 2026-01-01 00:00 UTC.
EPOCH = 1767225600.0


def synthetic_comparison(index: int, runs: int = 5, seed: int = 0) -> ComparisonEntry:
    """Comparison `index`: `runs` runs (one per generator, cycling), all on one dataset and day."""
    rng = random.Random(seed * 1_000_003 + index)
    dataset = DATASETS[index % len(DATASETS)]
    started = EPOCH + (index % 300) * DAY
    gridsize = 1 + index % 2
    common = {
        "data_fingerprint": dataset,
        "data_description": f"synthetic dataset {dataset[0]}",
        "gridsize": gridsize,
        "ptycho_version": "0.1.0",
        "git_sha": None,
    }
    comparison = {
        "key": f"synthetic-{seed}-{index}",
        "folder": f"/synthetic/cmp{index}",
        "started": started,
        "wall_seconds": 60.0,
        "status": "ok",
        "seeds": 1,
        "provenance": {"synthetic": True},
        **common,
    }
    entries = []
    for k in range(runs):
        generator = GENERATORS[(index + k) % len(GENERATORS)]
        columns = {
            "command": "compare",
            "name": generator,
            "generator": generator,
            "plugin": f"ptycho-{generator}",
            "plugin_version": f"0.{index % 3}.0",
            "framework": "numpy",
            "options": {"width": rng.choice([16, 32, 64])},
            "train_config": {"epochs": 20, "device": "cpu", "precision": "fp32"},
            "seed": k,
            "epochs": 20,
            "device": "cpu",
            "precision": "fp32",
            "started": started,
            "finished": started + 30.0,
            "status": "ok" if rng.random() > 0.05 else "failed",
            "reason": "",
            "reused": False,
            "folder": f"/synthetic/cmp{index}/runs/{generator}",
            **common,
        }
        metrics = {
            "amp_ssim": rng.random(),
            "phase_ssim": rng.random(),
            "data_error": rng.random(),
            "frc_amp_px": 2 + 10 * rng.random(),
            "train_seconds": 10 + 100 * rng.random(),
            "parameters": float(rng.randrange(1000, 100000)),
        }
        entries.append(RunEntry(columns, metrics))
    return ComparisonEntry(comparison, entries)
