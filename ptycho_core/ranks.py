"""This process's place among data-parallel replicas (torchrun's RANK / WORLD_SIZE / LOCAL_RANK).

Standard library only, below `pipeline` (which writes checkpoints on rank 0 alone) and
`ptycho_core.parallel` (the `--nproc` launcher, which re-exports these names).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Ranks:
    """This process's place among the data-parallel replicas."""

    rank: int
    world_size: int
    local_rank: int


def ranks(environ: Mapping[str, str] | None = None) -> Ranks | None:
    """torchrun's RANK / WORLD_SIZE / LOCAL_RANK, or None outside torchrun (or with one process)."""
    environ = os.environ if environ is None else environ
    try:
        world = int(environ.get("WORLD_SIZE", "1"))
        if world <= 1 or "RANK" not in environ:
            return None
        return Ranks(int(environ["RANK"]), world, int(environ.get("LOCAL_RANK", environ["RANK"])))
    except ValueError:
        return None


def is_writer(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process writes checkpoints, histories and reports: rank 0, or not distributed."""
    r = ranks(environ)
    return r is None or r.rank == 0
