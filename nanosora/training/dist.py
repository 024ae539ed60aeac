"""Distributed training, a thin branch: under torchrun (RANK and WORLD_SIZE set) start a
process group and wrap the model, in DDP (every rank holds the whole model) or, for the large
presets, in FSDP2 (`fully_shard`: each rank holds a shard of every block's weights, gradients
and optimizer state); otherwise do nothing. Rank 0 logs and saves. gloo on CPU (both tested
here with 2 processes), nccl on CUDA.
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


FSDP_MIN_PARAMS = 100_000_000  # from here on (the base and large presets) shard by default


def wrap(model: torch.nn.Module, fsdp: bool | None = None) -> torch.nn.Module:
    """DDP, or FSDP2 when `fsdp` (None: when the model has FSDP_MIN_PARAMS parameters or more).
    FSDP2 shards each transformer block, then the rest, in place (the same module object)."""
    if not (tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1):
        return model
    if fsdp is None:
        fsdp = sum(p.numel() for p in model.parameters()) >= FSDP_MIN_PARAMS
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        for block in getattr(model, "blocks", []):
            fully_shard(block)
        return fully_shard(model)
    from torch.nn.parallel import DistributedDataParallel

    dev = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)


def is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def full(t: torch.Tensor) -> torch.Tensor:
    """A plain tensor from a (possibly sharded) one; a collective for a sharded tensor."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def state_dicts(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Whole (unsharded, CPU) model and optimizer state. With FSDP2 this gathers shards, so
    every rank must call it; otherwise it is the plain module's state."""
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(model, options=opts), get_optimizer_state_dict(
            model, optimizer, options=opts
        )
    return unwrap(model).state_dict(), optimizer.state_dict()


def load_state_dicts(model: torch.nn.Module, optimizer: torch.optim.Optimizer, msd: dict, osd: dict) -> None:
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True)
        set_model_state_dict(model, msd, options=opts)
        set_optimizer_state_dict(model, optimizer, osd, options=opts)
        return
    unwrap(model).load_state_dict(msd)
    optimizer.load_state_dict(osd)


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
