"""DistributedDataParallel for the torch trainer (docs/design.md#scaling, DDP).

Under torchrun (`ptycho_core.ranks.ranks`) `replicas(device)` joins the process group (gloo on
CPU, NCCL on CUDA, rendezvous from torchrun's environment) and returns a `Replicas`: the trainer
wraps its network in DDP, draws each epoch's global order with the shared seed and keeps this
rank's share (`DistributedSampler`: rank r takes positions r, r + W, ...), so step s of all ranks
together is exactly step s of one process with W times the batch; losses, validation sums and stop
decisions are all-reduced, so every rank takes the same decisions. Generators do not change.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass

import torch

from ptycho_core.ranks import ranks as process_ranks


@dataclass(frozen=True)
class Replicas:
    """This process's rank among `world_size` replicas, and the collectives the trainer needs."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model under DistributedDataParallel (only training steps, the same count on every rank,
        call its forward; validation uses the bare model)."""
        from torch.nn.parallel import DistributedDataParallel  # lazy: DDP only under torchrun

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's share of a global order (padded by wrapping, so every rank steps equally)."""
        from torch.utils.data import DistributedSampler  # lazy: DDP only under torchrun

        sampler = DistributedSampler(range(len(order)), self.world_size, self.rank, shuffle=False)
        return order[torch.tensor(list(sampler), dtype=torch.long)]

    def sum(self, *values: float) -> list[float]:
        """Element-wise sums over every rank."""
        import torch.distributed as dist  # lazy: DDP only under torchrun

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        """Whether any rank says so."""
        return self.sum(1.0 if flag else 0.0)[0] > 0


def replicas(device: torch.device) -> Replicas | None:
    """The replicas of this process under torchrun (joining the process group on first use), or
    None outside torchrun. On CUDA each rank uses the GPU of its LOCAL_RANK."""
    ranks = process_ranks()
    if ranks is None:
        return None
    import torch.distributed as dist  # lazy: DDP only under torchrun

    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_leave)
    return Replicas(ranks.rank, ranks.world_size, ranks.local_rank, device)


def _leave() -> None:
    import torch.distributed as dist  # lazy: DDP only under torchrun

    if dist.is_initialized():
        dist.destroy_process_group()
