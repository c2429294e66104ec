"""torch.distributed for evaluations started by ``torchrun`` (gloo on CPU, nccl on GPU).

Work is split by image index (image ``i`` goes to rank ``i % world_size``), every rank
writes its own records, and rank 0 gathers and merges them after all ranks finish.
Nothing here launches processes: ``torchrun`` does (one node or several, through its
rendezvous).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["Distributed", "rank_device", "setup_distributed", "shard"]

#: How long a rank waits for the others at a barrier (ranks finish their shards at
#: different times; a paper-scale shard takes hours).
BARRIER_TIMEOUT = datetime.timedelta(hours=48)


@dataclass
class Distributed:
    """This process's place in the run.

    Attributes:
        rank, world_size: As torch.distributed defines them (0 and 1 without torchrun).
        local_rank: The rank on this machine (picks the GPU).
        started_here: Whether :func:`setup_distributed` initialised the process group
            (and :meth:`close` destroys it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    started_here: bool = False

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Waits for every rank (no-op in a single process)."""
        if self.world_size > 1:
            dist.barrier()

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (a list in rank order); ``None`` elsewhere."""
        if self.world_size == 1:
            return [obj]
        out: list[Any] | None = [None] * self.world_size if self.is_root else None
        dist.gather_object(obj, out, dst=0)
        return out

    def all_sum(self, value: int) -> int:
        """The sum of ``value`` over the ranks, on every rank."""
        if self.world_size == 1:
            return value
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return sum(values)

    def close(self) -> None:
        """Destroys the process group if :func:`setup_distributed` created it."""
        if self.started_here and dist.is_initialized():
            dist.destroy_process_group()
            self.started_here = False


def setup_distributed(device: str) -> Distributed:
    """Joins the ``torchrun`` process group (if this process was started by torchrun).

    Uses an already initialised process group as it is; otherwise initialises one from
    torchrun's environment (``WORLD_SIZE > 1``): nccl when ``device`` is a CUDA device
    (each process takes the GPU ``cuda:LOCAL_RANK``), gloo otherwise.

    Args:
        device: The requested device (``"cpu"``, ``"cuda"``...).
    """
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return Distributed(dist.get_rank(), dist.get_world_size(), local)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=BARRIER_TIMEOUT)
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank, started_here=True)


def rank_device(device: str) -> torch.device:
    """The device of this process: ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun."""
    parsed = torch.device(device)
    if parsed.type == "cuda" and parsed.index is None and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return parsed


def shard(indices: Sequence[int], state: Distributed) -> list[int]:
    """The indices this rank evaluates: every ``world_size``-th, from position ``rank``.

    The split depends on the indices only, never on what an earlier run completed, so a
    resumed run gives every rank the same images (records need no shared file system
    when the number of processes stays the same).
    """
    return list(indices)[state.rank :: state.world_size]
