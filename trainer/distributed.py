"""The process group under ``torchrun`` / ``accelerate launch``: one process per device (gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """The place of the current process in the job."""

    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """Whether this is the process that writes files."""
        return self.rank == 0


def init() -> World:
    """Join the process group when launched by torchrun (gloo on CPU, NCCL on GPU)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    local = int(os.environ.get("LOCAL_RANK", rank))
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    return World(rank, size, device)


def sum_scalar(value: float, world: World) -> float:
    """Sum a float over ranks."""
    if world.size == 1:
        return value
    t = torch.tensor(
        [value], dtype=torch.float64, device=world.device if world.device.type == "cuda" else "cpu"
    )
    dist.all_reduce(t)
    return float(t.item())


def barrier(world: World) -> None:
    """Wait for every rank."""
    if world.size > 1:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group."""
    if dist.is_initialized():
        dist.destroy_process_group()
