"""Sharding work across processes started by ``torchrun`` (or any launcher that sets
WORLD_SIZE / RANK / LOCAL_RANK).

    torchrun --standalone --nproc_per_node 2 -m sr_ops upscale IN_DIR OUT_DIR --model rt4ksr --scale 2

Every rank shards the same sorted list of *all* inputs (``items[rank::world]``) and then
skips the ones whose output already exists, so the split never depends on what a rank
happens to see on disk; a rank that crashed leaves its unfinished images to the rerun.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence, TypeVar

import torch

__all__ = ["Group", "launched", "setup", "shard"]

T = TypeVar("T")


def launched() -> bool:
    """Whether this process is one rank of a multi-process launch (WORLD_SIZE > 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ
    except ValueError:
        return False


def shard(items: Sequence[T], rank: int, world: int) -> list[T]:
    """This rank's share of ``sorted(items)``: every world-th item from position rank."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"need 0 <= rank < world, got rank={rank}, world={world}")
    return list(sorted(items))[rank::world]


@dataclass
class Group:
    """The process group this run uses (a single process when not launched)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"
    initialised: bool = False

    def sum(self, counts: list[int]) -> list[int]:
        """Element-wise sum of ``counts`` over all ranks (identity for one process)."""
        if not self.initialised:
            return list(counts)
        import torch.distributed as dist

        t = torch.tensor(counts, dtype=torch.int64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [int(v) for v in t.cpu()]

    def close(self) -> None:
        if self.initialised:
            import torch.distributed as dist

            # Every rank leaves together: tearing gloo down while a peer still talks to
            # the store aborted rank 0 ("terminate called without an active exception").
            dist.barrier()
            dist.destroy_process_group()
            self.initialised = False


def setup(device: str) -> Group:
    """Join the launch's process group: gloo for CPU runs, nccl when ``device`` is CUDA
    (each rank then takes GPU LOCAL_RANK). Without a launch, a one-process Group."""
    if not launched():
        return Group(device=device)
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Group(rank, world, local, device, True)
