"""The device a run uses and what it can do: GPU or CPU, native bf16 on the CPU, a C++
compiler for torch.compile, and bf16 autocast where it pays. Distributed setup is dist.py's."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager

import torch


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


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_times() -> tuple[int, int]:
    """The system's CPU time counters since boot (Linux /proc/stat): all, and idle or waiting."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]


def busy_cores(seconds: float = 0.2, sample=cpu_times) -> float:
    """How many cores other processes keep busy now, from the system's CPU counters over a
    short look (0 where there are none). Counters, not the load average: in a VM the load
    average counts kernel threads that use no CPU and reads about 1 on an idle machine."""
    import time

    try:
        (t0, i0) = sample()
        time.sleep(seconds)
        (t1, i1) = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    total = t1 - t0
    return 0.0 if total <= 0 else (1 - (i1 - i0) / total) * (os.cpu_count() or 1)


def pick_threads(requested: int | None = None) -> int:
    """Threads for torch's CPU work: `requested`, else the cores left free by other
    processes (at least one). PyTorch takes every core by default; beside another busy job
    both then fight over the same cores and each runs several times slower than with the
    cores shared out (benchmarks/threads.py)."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"threads {requested} is not valid: use 1 or more")
        return requested
    return max(1, min(cores(), round(cores() - busy_cores())))


def training_threads() -> int:
    """The thread count a training run keeps from start to end: the process's own default
    (OMP_NUM_THREADS, as torchrun sets it, else every core), never one picked by load. Float
    sums come out differently with another thread count, so a run that changed it part-way
    (after `generate` in the same process picked fewer threads on a busy machine) would not
    repeat an unbroken one."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else cores()


@contextmanager
def threads_held(n: int):
    """torch's CPU thread count set to n inside, and set back after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def use_threads(requested: int | None = None) -> int:
    """Set torch's CPU thread count (pick_threads) and return it."""
    n = pick_threads(requested)
    torch.set_num_threads(n)
    return n
