"""Data-parallel training (DESIGN section 10, DDP): torchrun's environment, and the launcher of
`ptycho train --nproc K`. Standard library only: the torch side is `ptycho_core.torch.distributed`.

Under `torchrun --nproc-per-node K` (or `python -m torch.distributed.run`) every process gets
RANK, WORLD_SIZE and LOCAL_RANK; `ranks()` reads them. The torch trainer then trains with
DistributedDataParallel (gloo on CPU, NCCL on GPUs), and only rank 0 writes files (`is_writer`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: The option of `ptycho train` that launches torchrun for itself.
NPROC_OPTION = "--nproc"


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


def launch_command(nproc: int, args: Sequence[str]) -> list[str]:
    """`python -m torch.distributed.run` running `ptycho <args>` in `nproc` processes on this machine
    (standalone rendezvous on the loopback interface)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "ptycho_cli",
        *args,
    ]


def without_nproc(argv: Sequence[str]) -> list[str]:
    """`argv` without `--nproc K` / `--nproc=K` (what each launched process runs)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == NPROC_OPTION:
            skip = True
        elif not arg.startswith(NPROC_OPTION + "="):
            out.append(arg)
    return out
