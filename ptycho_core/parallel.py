"""Data-parallel training (docs/design.md#scaling, DDP): torchrun's environment, and the launcher of
`ptycho train --nproc K`. Standard library only: the torch side is `ptycho_core.torch.distributed`.

Under `torchrun --nproc-per-node K` (or `python -m torch.distributed.run`) every process gets
RANK, WORLD_SIZE and LOCAL_RANK; `ranks()` reads them. The torch trainer then trains with
DistributedDataParallel (gloo on CPU, NCCL on GPUs), and only rank 0 writes files (`is_writer`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ptycho_core.ranks import Ranks, is_writer, ranks

__all__ = ["NPROC_OPTION", "Ranks", "is_writer", "launch_command", "ranks", "without_nproc"]

#: The option of `ptycho train` that launches torchrun for itself.
NPROC_OPTION = "--nproc"


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
