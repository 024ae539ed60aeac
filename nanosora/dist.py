"""Distributed training, a thin branch: under torchrun (RANK and WORLD_SIZE set) start a
process group and wrap the model, in DDP (every rank holds the whole model) or, for the large
presets, in FSDP2 (`fully_shard`: each rank holds a shard of every block's weights, gradients
and optimizer state); otherwise do nothing. Rank 0 logs and saves. gloo on CPU (both tested
here with 2 processes), nccl on CUDA.
"""

from __future__ import annotations

import os
import shutil

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


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX); elsewhere
    torch emulates bf16 on the CPU, which is slower than fp32. (torch exposes the test only
    as private functions; a torch without them counts as no.)"""
    return any(
        getattr(torch.cpu, f, lambda: False)()
        for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )


def check_cpu_bf16() -> None:
    if not cpu_has_bf16():
        raise ValueError(
            "bf16 was asked for, but this CPU has no native bf16 (AVX512-BF16 or AMX), so it "
            "would be slower than fp32: leave it off (or use int8 for generation)"
        )


def can_compile(dev: torch.device) -> bool:
    """Whether torch.compile can build kernels for `dev`. On CPU its inductor backend writes
    C++ and needs a compiler ($CXX, or c++ / g++ / clang++ on the PATH)."""
    if dev.type != "cpu":
        return True
    names = [os.environ.get("CXX", ""), "c++", "g++", "clang++"]
    return any(n and shutil.which(n) for n in names)


def check_compile(dev: torch.device) -> None:
    if not can_compile(dev):
        raise ValueError(
            "--compile needs a C++ compiler for CPU kernels (set $CXX, or install g++ or "
            "clang++); without --compile the same training runs uncompiled"
        )


def autocast(dev: torch.device, cpu_bf16: bool = False):
    """bf16 autocast where the device supports it; fp32 on CPU (the project's default: exact,
    and the only fast choice on most CPUs) unless `cpu_bf16` asks for bf16 there."""
    import contextlib

    if dev.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if dev.type == "cpu" and cpu_bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class CPUBF16(torch.nn.Module):
    """A transformer whose calls run under CPU bf16 autocast: the matrix multiplies in bf16
    (about 4x the fp32 matmul peak on this project's AVX512-BF16 machine), weights, norms and
    outputs in fp32.
    Everything else (cfg, grid, ...) is the wrapped model's."""

    def __init__(self, inner: torch.nn.Module):
        check_cpu_bf16()
        super().__init__()
        self.inner = inner

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)

    def text_context(self, *args, **kwargs):
        with autocast(torch.device("cpu"), cpu_bf16=True):
            return self.inner.text_context(*args, **kwargs)

    def forward(self, *args, **kwargs):
        with autocast(torch.device("cpu"), cpu_bf16=True):
            return self.inner(*args, **kwargs).float()


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
