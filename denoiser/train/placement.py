"""Where a training process runs: alone on the configured device, or as one rank of a torchrun
(DDP) group, each rank on its own GPU (or all on the CPU with the gloo backend).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from denoiser.core.config import RunConfig


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass(frozen=True)
class Placement:
    """Where this process trains: rank `rank` of `world` processes, on `device`."""

    rank: int
    world: int
    device: torch.device

    @property
    def ddp(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:  # rank 0 alone writes files and prints
        return self.rank == 0


def place_process(cfg: RunConfig) -> Placement:
    """Join torchrun's process group when started by it (WORLD_SIZE > 1), else train alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Placement(0, 1, resolve_device(cfg.train.device))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = (torch.device(f"cuda:{int(os.environ['LOCAL_RANK'])}") if torch.cuda.is_available()
              else torch.device("cpu"))
    return Placement(dist.get_rank(), dist.get_world_size(), device)
