"""Distributed training, a thin branch: under torchrun (RANK and WORLD_SIZE set) start a
process group and wrap the model in DDP; otherwise do nothing. Rank 0 logs and saves.
gloo on CPU (tested here with 2 processes), nccl on CUDA.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as tdist


def rank_world() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def setup() -> tuple[int, int]:
    rank, world = rank_world()
    if world > 1 and not tdist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        tdist.init_process_group(backend)
    return rank, world


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    if tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1:
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model)
    return model


def teardown() -> None:
    if tdist.is_available() and tdist.is_initialized():
        tdist.barrier()
        tdist.destroy_process_group()
