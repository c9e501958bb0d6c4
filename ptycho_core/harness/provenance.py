"""Provenance of a comparison (metrics.json "provenance"): everything needed to reproduce or judge
it. Framework-neutral: library versions come from the modules the compared generators declare
in `requires` (looked up in the installed distributions' metadata), not from a list of names.
"""

from __future__ import annotations

import os
import platform
import time
from importlib import metadata

from ptycho_core import __version__
from ptycho_core.host import git_sha
from ptycho_core.pipeline import PREDICT_BATCH

#: Modules of the core's own numerical stack, always reported.
CORE_MODULES = ("numpy", "scipy", "skimage")


def build_provenance(request, selection, staged, registry, *, gpus, threads: int, started: float) -> dict:
    """The provenance block of a comparison (see `harness.compare.run` for the arguments)."""
    config = selection.base_config
    return {
        "ptycho": __version__,
        "plugins": [
            {"distribution": p.get("distribution"), "version": p.get("version"), "builtin": p.get("builtin", False)}
            for p in registry.plugins
        ],
        "generators": [_generator(spec, selection.train) for spec in selection.specs],
        "frameworks": library_versions(CORE_MODULES + tuple(m for s in selection.specs for m in s.requires)),
        "git_sha": git_sha(),
        "hardware": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "gpu": gpus or None,
            "jobs": request.jobs,
            "threads_per_child": threads,
            "executor": request.executor,
            "scheduler": request.scheduler,
        },
        "grid": request.grid,
        "command_line": list(request.command_line) if request.command_line is not None else None,
        "data": {"fingerprint": staged.fingerprint, "prepared_hash": staged.prepared_hash, **staged.source},
        "split": staged.split_info,
        "gridsize": request.gridsize,
        "train_config": config.to_dict(),
        "seeds": [config.seed + k for k in range(request.seeds)],
        "stitcher": {
            "name": selection.stitcher.name,
            "distribution": selection.stitcher.distribution,
            "options": selection.stitch_options,
        },
        "timeout_s": request.timeout,
        "inference_batch_groups": PREDICT_BATCH,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "wall_seconds": round(time.time() - started, 1),
    }


def _generator(spec, train: dict) -> dict:
    return {
        "name": spec.name,
        "distribution": spec.distribution,
        "version": spec.version,
        "framework": spec.framework,
        "factory": spec.factory,
        "supervised": spec.supervised,
        "train_defaults": dict(spec.train_defaults),
        "train_config": spec.train_config(train).to_dict(),
    }


def library_versions(modules) -> dict[str, str]:
    """{distribution: version} of the installed distributions providing these top-level modules."""
    providers = metadata.packages_distributions()
    versions = {}
    for module in dict.fromkeys(modules):
        for dist in providers.get(module, ()):
            try:
                versions[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                pass
    return versions
