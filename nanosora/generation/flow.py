"""Flow matching (rectified flow): the time convention, training targets and samplers.

Time convention, the one place it is written down:
    x_t = (1 - t) * x_0 + t * noise,   t in [0, 1],   t = 0 data, t = 1 pure noise
    velocity v = dx_t/dt = noise - x_0 (what the transformer predicts)
Sampling integrates from t = 1 to t = 0: x_{t'} = x_t + (t' - t) * v.

Timesteps for training come from a logit-normal (Esser et al. 2024, SD3), then pass
through the schedule shift t -> s t / (1 + (s - 1) t); s grows with the square root of the
latent size (SD3 section 5.3.2: a larger latent keeps more signal at the same noise level,
so it needs more noise), as Open-Sora and Flux also do. Samplers use the same shift. The
size is counted in latent positions, not tokens: cutting the same latents into finer
patches does not change how much signal survives a noise level.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

REF_POSITIONS = 320  # latent positions of the default clip (17 frames at 64x64: 5 x 8 x 8)


@dataclass(frozen=True)
class FlowConfig:
    logit_mean: float = 0.0
    logit_std: float = 1.0


def shift_for(positions: int, base: float = 1.0) -> float:
    """The schedule shift for latents of `positions` (frames x height x width) positions, for
    a model trained with shift `base` at REF_POSITIONS (DiTConfig.flow_shift, so training and
    sampling always agree)."""
    return min(8.0, max(0.5, base * math.sqrt(positions / REF_POSITIONS)))


def positions(shape: tuple[int, ...]) -> int:
    """Latent positions of latents (..., T, h, w)."""
    return math.prod(shape[-3:])


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    return shift * t / (1 + (shift - 1) * t)


def sample_t(
    n: int, shift: float, generator: torch.Generator, cfg: FlowConfig = FlowConfig()
) -> torch.Tensor:
    u = torch.randn(n, generator=generator) * cfg.logit_std + cfg.logit_mean
    return shift_time(torch.sigmoid(u), shift)


def noisy(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The training pair: x_t and the velocity target, side by side so they never drift apart."""
    tt = t.view(-1, *([1] * (x0.ndim - 1)))
    x_t = (1 - tt) * x0 + tt * noise
    target = noise - x0
    return x_t, target


def velocity_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error on the velocity, weighted: `weight` (broadcastable, 0 or more) is 0 on
    the frames the model does not generate (conditioning frames are given, not learned) and
    may weigh some latents more than others (DiTTrainConfig.object_weight)."""
    se = (pred.float() - target.float()).pow(2)
    if weight is None:
        return se.mean()
    w = weight.expand_as(se)
    return (se * w).sum() / w.sum().clamp_min(1.0)


def get_noise(shape: tuple[int, ...], seeds: list[int], device=None, dtype=torch.float32) -> torch.Tensor:
    """Gaussian noise, one seeded CPU generator per sample: the same seed gives the same noise
    whatever the device, the batch size or the sample's place in the batch."""
    out = []
    for s in seeds:
        g = torch.Generator().manual_seed(int(s))
        out.append(torch.randn(shape, generator=g))
    return torch.stack(out).to(device=device, dtype=dtype)


def get_schedule(steps: int, shift: float) -> list[float]:
    """steps + 1 times from 1 to 0, spaced evenly then shifted."""
    if steps < 1:
        raise ValueError(f"steps {steps} is not valid: use 1 or more")
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return shift_time(t, shift).tolist()


VelocityFn = Callable[[torch.Tensor, float], torch.Tensor]


def guidance_modes(guidance: float, cond_guidance: float = 1.0, has_cond: bool = False) -> tuple[str, ...]:
    """The passes classifier-free guidance needs: "full" (text and conditioning), "cond"
    (conditioning, empty text) and "none" (neither)."""
    if guidance == 1.0 and (not has_cond or cond_guidance == 1.0):
        return ("full",)
    if not has_cond:
        return ("full", "none")
    return ("full", "cond") if cond_guidance == 1.0 else ("full", "cond", "none")


def check_until(until: float) -> None:
    """Refuse a guidance stop that is not a sampling time."""
    if not 0 <= until <= 1:
        raise ValueError(f"guidance-until {until} is not valid: use a time in [0, 1] (0: guide every step)")


def is_guided(t: float, until: float) -> bool:
    """Whether the step at time t (1 noise, 0 data) is guided when guidance stops at `until`."""
    return t > until


def guided(
    model_fn: Callable[[torch.Tensor, float, tuple[str, ...]], list[torch.Tensor]],
    guidance: float,
    cond_guidance: float = 1.0,
    has_cond: bool = False,
    until: float = 0.0,
) -> VelocityFn:
    """Classifier-free guidance (Ho & Salimans 2022). model_fn evaluates the passes named by
    guidance_modes in one call (one batch: a batch of 2 or 3 costs far less than 2 or 3 calls
    at these sizes). With conditioning, guidance is split as in InstructPix2Pix:
        v = v_none + g_c (v_cond - v_none) + g_t (v_full - v_cond)
    guidance 1 (and cond_guidance 1) needs a single pass.

    `until`: guide only while t > until; later steps run the "full" pass alone (a guidance
    interval, as Kynkaanniemi et al. 2024 found for images). Late in sampling the layout is
    settled, and guidance there only pushes edges past the data: with the default model,
    stopping at t = 0.45 passed 140 of 240 validation clips against 120 when guiding every
    step (config.DEFAULT_GUIDANCE_UNTIL), and skips the unconditional pass of 4 of 20 steps."""
    modes = guidance_modes(guidance, cond_guidance, has_cond)

    def fn(x, t):
        if len(modes) == 1 or not is_guided(t, until):
            return model_fn(x, t, modes[:1])[0]
        v = dict(zip(modes, model_fn(x, t, modes), strict=True))
        if not has_cond:
            return v["none"] + guidance * (v["full"] - v["none"])
        if cond_guidance == 1.0:
            return v["cond"] + guidance * (v["full"] - v["cond"])
        return v["none"] + cond_guidance * (v["cond"] - v["none"]) + guidance * (v["full"] - v["cond"])

    return fn


def denoise(
    velocity: VelocityFn,
    x: torch.Tensor,
    schedule: list[float],
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Integrate from schedule[0] (noise) to schedule[-1] (data) with Euler steps, one
    velocity call a step. Second-order samplers (Heun; Adams-Bashforth, as DPM-Solver++(2M)
    steps) were measured against it on the shipped model and passed no more validation clips,
    Heun at twice the calls and AB2 overshooting the guided velocity at few steps
    (docs/measurements.md), so Euler is the one sampler."""
    n = len(schedule) - 1
    for i, (t, t_next) in enumerate(zip(schedule[:-1], schedule[1:], strict=True)):
        x = x + (t_next - t) * velocity(x, t)
        if callback is not None:
            callback(i + 1, n, x)
    return x
