"""torch.distributed set-up: one code path for a single process and torchrun."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank, world size, device, whether a process group exists."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    initialised: bool

    @property
    def is_main(self) -> bool:
        """True on rank 0 (logs, checkpoints, exports)."""
        return self.rank == 0


def setup(backend: str) -> DistInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` set), else run alone.

    Any ``WORLD_SIZE`` (including 1) goes through ``init_process_group``, so a
    single-process gloo run exercises the same code as a multi-GPU NCCL run.
    """
    if "WORLD_SIZE" not in os.environ:
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return DistInfo(0, 1, 0, dev, False)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev, True)


def barrier(info: DistInfo) -> None:
    """Synchronise processes (no-op without a process group)."""
    if info.initialised:
        dist.barrier()


def teardown(info: DistInfo) -> None:
    """Leave the process group this module created."""
    if info.initialised and dist.is_initialized():
        dist.destroy_process_group()
