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


def device() -> torch.device:
    """cuda (this rank's GPU under torchrun), else mps, else cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast(dev: torch.device):
    """bf16 autocast where the device supports it; fp32 on CPU (faster there, and exact)."""
    import contextlib

    if dev.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    if tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1:
        from torch.nn.parallel import DistributedDataParallel

        dev = next(model.parameters()).device
        return DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    return model


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model inside DDP and torch.compile wrappers (whose keys a checkpoint keeps)."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if inner is None:
            return model
        model = inner


def teardown() -> None:
    if tdist.is_available() and tdist.is_initialized():
        tdist.barrier()
        tdist.destroy_process_group()
