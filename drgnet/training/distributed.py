"""Data-parallel training with torch.distributed: the process group torchrun describes, and each rank's data.

``drgnet train`` works unchanged under ``torchrun --nproc_per_node=N -m drgnet.cli train ...``: ``fit`` joins
the process group from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ...; gloo on CPU,
NCCL on CUDA), wraps the task in DistributedDataParallel, gives each rank a disjoint share of every epoch's
samples, and only rank 0 evaluates and writes checkpoints and history. Without torchrun nothing changes.

Setting ``DRGNET_DIST_TRACE=DIR`` makes each rank append what it did (the indices it trained on each epoch,
the checkpoints it wrote) to ``DIR/rank<R>.jsonl``; the tests use it to check the sharding.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

TRACE_ENV = "DRGNET_DIST_TRACE"

_owned = False  # this module initialised the process group (and so may destroy it)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a data-parallel run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def current() -> DistContext:
    """The context of the initialised process group, or rank 0 of 1."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistContext()


def setup(device: str | torch.device = "cpu") -> DistContext:
    """Join the process group that torchrun's environment variables describe; a no-op without them.

    Args:
        device: The training device; CUDA uses NCCL, anything else gloo.
    """
    global _owned
    if dist.is_available() and dist.is_initialized():
        return current()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistContext()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    _owned = True
    return current()


def cleanup() -> None:
    """Leave the process group if ``setup`` created it."""
    global _owned
    if _owned and dist.is_initialized():
        dist.destroy_process_group()
    _owned = False


def barrier() -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def mean_across_ranks(values: dict[str, float]) -> dict[str, float]:
    """Average per-rank scalars over all ranks (the same keys on every rank)."""
    ctx = current()
    if not ctx.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, t.tolist(), strict=True)}


def trace(event: str, **data: Any) -> None:
    """Append an event to ``$DRGNET_DIST_TRACE/rank<R>.jsonl`` when that variable is set (tests)."""
    folder = os.environ.get(TRACE_ENV)
    if not folder:
        return
    ctx = current()
    path = Path(folder) / f"rank{ctx.rank}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"event": event, "rank": ctx.rank, "world_size": ctx.world_size, **data}) + "\n")


def trace_weights(model: torch.nn.Module, event: str = "weights") -> None:
    """Trace a checksum of the model's parameters: equal on every rank when DDP kept the replicas in step."""
    if os.environ.get(TRACE_ENV):
        with torch.no_grad():
            checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
        trace(event, checksum=checksum)


class ShardedSampler(Sampler[int]):
    """Each rank's disjoint share of one epoch drawn by another sampler.

    Every rank draws the same epoch from ``base`` (same seed, same generator state), keeps the positions
    ``rank, rank + world, ...`` and drops the tail that would give ranks unequal counts (DDP needs the same
    number of steps on every rank). With one rank it yields exactly what ``base`` yields, so single-process
    runs are unchanged.
    """

    def __init__(self, base: Sampler[int], rank: int = 0, world_size: int = 1, epoch: int = 0) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of {world_size}")
        self.base = base
        self.rank = rank
        self.world_size = world_size
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.base) if isinstance(self.base, Sized) else 0
        return n // self.world_size

    def __iter__(self) -> Iterator[int]:
        drawn = [int(i) for i in self.base]
        usable = len(drawn) // self.world_size * self.world_size
        mine = drawn[self.rank : usable : self.world_size]
        if os.environ.get(TRACE_ENV):
            trace("epoch_indices", epoch=self.epoch, drawn=drawn, mine=mine, rank_in_sampler=self.rank)
        yield from mine


__all__ = [
    "TRACE_ENV",
    "DistContext",
    "ShardedSampler",
    "barrier",
    "cleanup",
    "current",
    "mean_across_ranks",
    "setup",
    "trace",
    "trace_weights",
]
