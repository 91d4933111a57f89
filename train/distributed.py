"""The ranks of a torchrun launch: process group start, rank-0-first sections and averages over ranks.

One process (no WORLD_SIZE, or WORLD_SIZE=1) is a world of one, and every function here is then a no-op,
so the trainer has one code path."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from tomp_deploy.runtime.errors import ToMPError


@dataclass(frozen=True)
class Ranks:
    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints, logs and saves."""
        return self.rank == 0


def start(device: str = "cpu") -> Ranks:
    """Joins the process group torchrun describes (NCCL for a CUDA device, gloo on the CPU), once per process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world <= 1:
        return Ranks(0, 1, local_rank)
    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ:
            raise ToMPError(
                f"WORLD_SIZE={world} is set but MASTER_ADDR is not: start multi-process training with "
                "torchrun (see the README's 'Training on several GPUs'), or unset WORLD_SIZE."
            )
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Ranks(dist.get_rank(), world, local_rank)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


@contextmanager
def main_rank_first(ranks: Ranks):
    """Rank 0 runs the block first (writing what the others then read: synthetic data, a checkpoint), the
    other ranks after it has finished."""
    if not ranks.is_main:
        barrier()
    yield
    if ranks.is_main:
        barrier()


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of `values` over all ranks (gloo has no AVG reduction, hence SUM / world)."""
    if not dist.is_initialized():
        return values
    total = values.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / dist.get_world_size()


def average_buffers(module: torch.nn.Module) -> None:
    """Averages the floating-point buffers (BatchNorm running statistics) over ranks. In training mode each
    rank's BatchNorm updates them from its own shard (SyncBatchNorm needs CUDA), so without this the ranks
    would end an epoch with different models."""
    if not dist.is_initialized():
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            buffer.copy_(mean_over_ranks(buffer))


def finish() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
