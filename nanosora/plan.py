"""The compute planner: FLOPs, memory, time and energy of generating a video or of a training
run, for a model config on a device profile (this CPU as calibrated here, H100, H200, or N of
them). Every assumption is a named field that the report prints.

FLOPs are counted from the architecture (a multiply-add is 2 FLOPs), the way FlopCounterMode
counts them (tests/test_plan.py checks the two agree): per transformer block and token,
self-attention projections 4d^2 and scores 2Nd (QK^T and AV), cross-attention projections
2d^2 plus 2Ld, MLP 2rd^2; training is 3x the forward pass (backward costs twice the forward).
Generation fills a timeline window by window (timeline.py), each window costing steps x one
forward pass, over the guidance passes as one batch while guidance lasts (flow.guided: the
steps after `guidance_until` run one pass), plus the autoencoder. Time is FLOPs over the
device's peak times the fraction of peak this workload sustains (its efficiency), plus a
fixed cost per transformer call; on this CPU both are measured by calibration (two timed
generations), on GPUs the efficiency is an assumption you can change and the per-call cost
is taken as zero.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from nanosora.config import DEFAULT_GUIDANCE, DEFAULT_GUIDANCE_UNTIL, VAE_PRESETS, VAEConfig
from nanosora.networks.dit import DIT_PRESETS, DiTConfig


@dataclass(frozen=True)
class Device:
    name: str
    peak_flops: float  # dense matrix-multiply FLOP/s at the precision used
    efficiency: float  # fraction of peak this workload reaches (model FLOPs utilisation)
    memory_gb: float
    watts: float  # power drawn while busy, per device
    count: int = 1
    source: str = "assumed"
    call_overhead_s: float = 0.0  # fixed cost per transformer call (Python, kernel launches)

    def scaled(self, count: int) -> Device:
        return dataclasses.replace(
            self, count=count, name=f"{count} x {self.name}" if count > 1 else self.name
        )


# Datasheet peaks (dense bf16, NVIDIA); efficiency and power are assumptions, printed as such:
# large-transformer training commonly reaches 35-50% of peak, and the boards are rated 700 W.
DEVICES = {
    "h100": Device("H100 SXM, bf16", 989e12, 0.40, 80, 700, source="datasheet peak; 40% MFU assumed"),
    "h200": Device("H200 SXM, bf16", 989e12, 0.45, 141, 700, source="datasheet peak; 45% MFU assumed"),
}
CPU_WATTS = 30.0  # two busy laptop/server cores with their share of memory power: an assumption


def dit_forward_flops(
    cfg: DiTConfig, tokens: int, text_tokens: int = 48, batch: int = 1, distilled: bool = False
) -> float:
    """FLOPs of one forward pass over `tokens` spacetime patches and `text_tokens` text tokens;
    `distilled`: a guided.GuidedDiT, which also embeds the guidance scale."""
    d, L, n = cfg.dim, text_tokens, tokens
    hidden = int(d * cfg.mlp_ratio)
    patch_vol = math.prod(cfg.patch)
    per_block = (
        n * (2 * 4 * d * d + 2 * 2 * n * d)  # self-attention: qkv + out, scores + weighted sum
        + n * (2 * 2 * d * d + 2 * 2 * L * d)  # cross-attention: q + out, scores + weighted sum
        + L * 2 * 2 * d * d  # cross-attention keys and values of the text
        + n * 2 * 2 * d * hidden  # MLP
        + 2 * d * 6 * d  # adaLN modulation
    )
    io = n * 2 * d * ((2 * cfg.latent_channels + 1) * patch_vol + cfg.latent_channels * patch_vol)
    text = L * 2 * (cfg.text_dim * d + d * d) + 2 * (256 * d + d * d + cfg.text_dim * d + 2 * d * d)
    if distilled:  # the guidance scale's embedding, like the timestep's
        text += 2 * (256 * d + d * d)
    return float(batch * (cfg.depth * per_block + io + text))


def vae_flops(cfg: VAEConfig, frames: int, height: int, width: int, decode: bool = True) -> float:
    """FLOPs of decoding (or encoding) a clip, counted once on the meta device for a small clip
    and scaled by pixels x frames (convolutions are linear in both)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from nanosora.networks.vae import VideoVAE

    f0, h0, w0 = 1 + cfg.time_factor, 2 * cfg.space_factor, 2 * cfg.space_factor
    with torch.device("meta"):
        vae = VideoVAE(cfg)
        with FlopCounterMode(display=False) as fc:
            if decode:
                vae._decode_step(torch.zeros(1, cfg.latent_channels, 2, 2, 2), {})
            else:
                vae._encode_step(torch.zeros(1, 3, f0, h0, w0), {})
    return fc.get_total_flops() * (frames * height * width) / (f0 * h0 * w0)


@dataclass(frozen=True)
class Job:
    """A generation: what to make, with which model and settings."""

    dit: DiTConfig = DIT_PRESETS["default"]
    vae: VAEConfig = VAE_PRESETS["default"]
    width: int = 64
    height: int = 64
    seconds: float = 2.0
    fps: int = 8
    steps: int = 20
    # guidance: text and empty prompt (3 with image guidance; 1 without, or guidance-distilled)
    passes: int = 2
    guidance_until: float = DEFAULT_GUIDANCE_UNTIL  # steps at times t <= this run one pass
    window: int = 17  # frames per window; 0: the whole clip at once
    text_tokens: int = 48


def model_job(model, **settings) -> Job:
    """The Job of generating with a loaded model (nanosora.load) at its default settings."""
    return Job(dit=model.dit.cfg, vae=model.vae.cfg, window=model.window,
               passes=model.guidance_passes(DEFAULT_GUIDANCE), **settings)  # fmt: skip


def windows(job: Job) -> list[int]:
    """Frame counts of the windows that make the clip (timeline.py's plan, with nothing given)."""
    import numpy as np

    from nanosora.generation import timeline

    frames = int(round(job.seconds * job.fps)) + 1
    frames = 1 + job.vae.time_factor * max(0, round((frames - 1) / job.vae.time_factor))
    if job.window <= 0:
        return [frames]
    return [e - s for s, e in timeline.plan(np.zeros(frames, bool), job.window, job.vae.time_factor)]


def guided_steps(job: Job, tokens: int) -> int:
    """How many of a window's steps run every guidance pass (the sampler's own schedule)."""
    from nanosora.generation import flow

    if job.passes == 1:
        return job.steps
    positions = tokens * math.prod(job.dit.patch)  # the shift follows the latent size
    schedule = flow.get_schedule(job.steps, flow.shift_for(positions, job.dit.flow_shift))
    return sum(flow.is_guided(t, job.guidance_until) for t in schedule[:-1])


def generation_flops(job: Job) -> dict:
    pt, ph, pw = job.dit.patch
    s, f = job.vae.space_factor, job.vae.time_factor
    dit = vae = 0.0
    tokens = 0
    for i, n in enumerate(windows(job)):
        lat_t = 1 + (n - 1) // f
        tokens = (lat_t // pt) * (job.height // s // ph) * (job.width // s // pw)
        guided = guided_steps(job, tokens)
        dit += guided * dit_forward_flops(job.dit, tokens, job.text_tokens, batch=job.passes)
        dit += (job.steps - guided) * dit_forward_flops(job.dit, tokens, job.text_tokens, batch=1)
        vae += vae_flops(job.vae, n, job.height, job.width)
        if i:  # later windows encode their context
            vae += vae_flops(job.vae, n, job.height, job.width, decode=False)
    calls = job.steps * len(windows(job))
    return {
        "transformer": dit,
        "autoencoder": vae,
        "total": dit + vae,
        "tokens_per_window": tokens,
        "calls": calls,
    }


def generation_memory_gb(job: Job, bytes_per_value: int = 4) -> float:
    """Weights plus the live activations of one window's forward pass (no attention matrix is
    kept: SDPA streams it) plus one decoded chunk: a planning figure, not a promise."""
    from nanosora.networks.dit import count_params

    p = count_params(job.dit)
    pt, ph, pw = job.dit.patch
    n = (1 + (windows(job)[0] - 1) // job.vae.time_factor) // pt
    n *= (job.height // job.vae.space_factor // ph) * (job.width // job.vae.space_factor // pw)
    acts = job.passes * n * job.dit.dim * (4 + job.dit.mlp_ratio) * 3
    decode_chunk = 3 * 4 * job.vae.time_factor * job.height * job.width * max(job.vae.widths) / 4
    return (p + acts + decode_chunk) * bytes_per_value / 1e9


def estimate(flops: float, device: Device, calls: int = 0) -> dict:
    """Time and energy: FLOPs at the device's sustained rate, plus a fixed cost per call."""
    seconds = flops / (device.peak_flops * device.efficiency * device.count) + calls * device.call_overhead_s
    kwh = device.watts * device.count * seconds / 3.6e6
    return {"seconds": seconds, "kwh": kwh}


def training_flops(dit: DiTConfig, tokens: int, batch: int, steps: int, text_tokens: int = 48) -> float:
    return 3.0 * dit_forward_flops(dit, tokens, text_tokens, batch) * steps


def median_times(jobs: dict, repeats: int, warmup: int = 1) -> dict:
    """Median wall time of each job over `repeats` calls, after `warmup` untimed calls of each
    (the planner's calibration and the benchmarks time everything this one way). Several jobs
    are timed in turns (A, B, C, A, B, C, ...): a slow spell of a shared machine then falls on
    every job alike instead of on whichever ran during it, so their ratios hold between runs."""
    import statistics
    import time

    for fn in jobs.values():
        for _ in range(warmup):
            fn()
    times: dict = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, fn in jobs.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def median_time(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time of fn() alone (median_times)."""
    return median_times({"": fn}, repeats, warmup)[""]


def matmul_peak(bf16: bool = False, repeats: int = 3) -> float:
    """This machine's dense matrix-multiply FLOP/s, measured now: the best of square fp32 (or
    bf16) products of 512-2048, each the median of `repeats` after a warm-up run."""
    import torch

    dtype = torch.bfloat16 if bf16 else torch.float32
    best = 0.0
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        best = max(best, 2 * n**3 / median_time(lambda a=a, b=b: a @ b, repeats))
    return best


def calibrate_cpu(model=None, repeats: int = 3, bf16: bool = False) -> Device:
    """This machine: its matmul peak, measured now, and, with a model, two generations
    timed now (the default clip and a 128x128 one) that fix the two unknowns of the time
    model: the sustained fraction of peak, and the fixed cost per transformer call that
    dominates small jobs. `bf16`: the peak in bf16, for a model loaded with bf16=True (the
    transformer under bf16 autocast); fp32 otherwise."""
    import torch

    best = matmul_peak(bf16)
    eff, overhead = 0.35, 0.0
    if model is not None:
        points = []
        for side in (64, 128):
            job = model_job(model, width=side, height=side)

            def gen(s=side):
                model.generate("a red circle moves right", seconds=2, width=s, height=s, seed=0)

            t = median_time(gen, repeats)
            f = generation_flops(job)
            points.append((f["total"], f["calls"], t))
        (f1, c1, t1), (f2, c2, t2) = points
        rate = (f2 - f1) / max(1e-9, t2 - t1)  # FLOP/s sustained at scale (same number of calls)
        overhead = max(0.0, (t1 - f1 / rate) / c1)
        eff = rate / best
    threads = torch.get_num_threads()
    return Device(
        f"this CPU ({threads} threads, {'bf16' if bf16 else 'fp32'})", best, eff, 24, CPU_WATTS,
        source="peak, efficiency and per-call cost measured now; power assumed", call_overhead_s=overhead,
    )  # fmt: skip
