"""Generation: every mode as plain functions over the autoencoder, the transformer and the
text encoder; the Python API (`nanosora.load`), the CLI and the server all call these.

    prompt --expand--> detailed caption --text encoder--> token embeddings
    seeded noise on the latent grid (+ conditioning latents and a frame mask)
    --> flow-matching sampler with guidance --> latents --> chunked decoder --> frames
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from nanosora.generation import flow, reference, timeline
from nanosora.generation.request import Sampling
from nanosora.generation.timeline import Timeline
from nanosora.networks import guided
from nanosora.networks.conditioning import Conditioning
from nanosora.networks.text import pad_tokens
from nanosora.networks.vae import frames_to_tensor, tensor_to_frames

if TYPE_CHECKING:  # the planner's module is needed by layout models only
    from nanosora.networks.planner import Plan


def schedule_for(steps: int, shift: float, strength: float = 1.0) -> list[float]:
    """The sampling times: the shifted schedule, started at `strength` (< 1 for an edit)."""
    if not 0 < strength <= 1:
        raise ValueError(f"strength {strength} is not valid: use a number in (0, 1]")
    full = flow.get_schedule(steps, shift)
    return full if strength >= 1 else [strength] + [t for t in full if t < strength]


def shift_of(dit, shape: tuple[int, ...]) -> float:
    """The schedule shift for latents of this shape (it grows with the latent size)."""
    dit.grid(shape)  # refuses a shape the patches do not fit
    return flow.shift_for(flow.positions(shape), dit.cfg.flow_shift)


def sample_latents(
    dit,
    text: tuple[torch.Tensor, torch.Tensor],
    null: tuple[torch.Tensor, torch.Tensor],
    shape: tuple[int, int, int, int],
    seeds: list[int],
    sampling: Sampling | None = None,
    cond: Conditioning | None = None,
    shift: float | None = None,
    init: torch.Tensor | None = None,
    strength: float = 1.0,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
    refs: torch.Tensor | None = None,
) -> torch.Tensor:
    """Latents (B, C, T, h, w) for B = len(seeds) samples. text: (B, L, D) embeddings with
    their mask; null: the empty (or negative) prompt's, (B, L0, D). cond: given frames and
    layouts (conditioning.py). init/strength: start from `init` noised to time `strength`
    instead of from pure noise (SDEdit, Meng et al. 2022): the lower the strength, the more
    of `init` survives. sampling.one_pass_guidance: with a guidance-distilled transformer
    (guided.py), guide in one pass per step. refs: reference latents (B, C, R, h, w) before
    the window (reference.py; for a model trained with them), dropped from what is returned."""
    b = len(seeds)
    sampling = Sampling() if sampling is None else sampling
    cond = Conditioning() if cond is None else cond
    shift = shift_of(dit, shape) if shift is None else shift
    r = 0
    if refs is not None:  # the window's own schedule shift; the references ride along
        r = refs.shape[2]
        refs = refs.expand(b, -1, -1, -1, -1)
        cond = cond.with_references(refs, shape)
        init = None if init is None else torch.cat([refs, init], 2)
        shape = (shape[0], shape[1] + r, *shape[2:])
    x = flow.get_noise(shape, seeds)
    schedule = schedule_for(sampling.steps, shift, strength if init is not None else 1.0)
    if init is not None:
        x = (1 - schedule[0]) * init + schedule[0] * x
    has_cond = cond.has_given
    guidance, cond_guidance = sampling.guidance, sampling.cond_guidance
    modes = flow.guidance_modes(guidance, cond_guidance, has_cond)
    # a guidance-distilled transformer (guided.py) guides in one pass a step
    one_pass = (
        sampling.one_pass_guidance and len(modes) > 1 and guided.one_pass_serves(dit, cond_guidance, has_cond)
    )
    if one_pass:
        modes = modes[:1]
    # every pass of a step in one batch: text padded to one length (padding is masked out)
    L = max(text[0].shape[1], null[0].shape[1])
    txt = {"full": pad_tokens(text[0], L), "null": pad_tokens(null[0], L)}
    msk = {"full": pad_tokens(text[1], L), "null": pad_tokens(null[1], L)}
    texts = torch.cat([txt["full" if m == "full" else "null"] for m in modes])
    masks = torch.cat([msk["full" if m == "full" else "null"] for m in modes])
    passes = cond.for_passes(modes, shape[1])

    with torch.inference_mode():
        context = dit.text_context(texts, masks)  # once: the prompt is the same at every step
    # a step runs every pass, or (after guidance stops) the "full" pass alone: its rows come first
    contexts = {len(modes): (context, passes), 1: (context.rows(b), passes.rows(b))}

    def model_fn(x, t, some, scale=None):
        k = len(some)
        n = k * b
        ctx, c = contexts[k]
        g = {} if scale is None else {"guidance": torch.full((n,), float(scale))}
        with torch.inference_mode():
            v = dit(x.repeat(k, 1, 1, 1, 1), torch.full((n,), float(t)), ctx, None, c, **g)
        return list(v.chunk(k))

    if one_pass:
        velocity = guided.velocity(
            lambda x, t, g: model_fn(x, t, modes, g)[0], guidance, sampling.guidance_until
        )
    else:
        velocity = flow.guided(model_fn, guidance, cond_guidance, has_cond, until=sampling.guidance_until)
    x = flow.denoise(velocity, x, schedule, callback)
    if has_cond:  # given frames are given: keep them exactly
        m = reference.given(cond.frame_mask)[:, None, :, None, None].to(x.dtype)
        x = x * (1 - m) + cond.latents * m
    return x[:, :, r:]


def fill(
    vae,
    dit,
    tl: Timeline,
    text: tuple[torch.Tensor, torch.Tensor],
    null: tuple[torch.Tensor, torch.Tensor],
    seed: int,
    window: int,
    sampling: Sampling | None = None,
    strength: float = 1.0,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
    references: bool = False,
    refs: np.ndarray | None = None,
    plan: Plan | None = None,
    fps: float = 8.0,
    plan_from: int = 0,
) -> np.ndarray:
    """Generate every unknown frame of the timeline, window by window (see timeline.py), and
    return all its frames; known frames come back exactly as given. The callback sees steps
    counted over all windows. `references` (a model trained with reference frames,
    reference.py): every window is shown `refs` (frames (R, H, W, 3), from across a cut) or,
    without them, the timeline's first frame once it is known and outside the window.
    `plan` (a model that reads layouts): every object's box as a function of time
    (planner.Plan), read at each window's frame times at `fps` counted from frame
    `plan_from` (where the caption's time starts), so that window k's layout continues where
    window k - 1's ended."""
    sampling = Sampling() if sampling is None else sampling
    factor, h, w = vae.cfg.time_factor, tl.frames.shape[1], tl.frames.shape[2]
    ref_latents = None
    if references and refs is not None:
        with torch.inference_mode():
            ref_latents = torch.cat([vae.encode(frames_to_tensor(f[None])) for f in refs], 2)
    windows = timeline.plan(tl.known, window, factor)
    shapes = [(vae.cfg.latent_channels, *vae.latent_shape(e - s, h, w)[1:]) for s, e in windows]
    shifts = [shift_of(dit, shape) for shape in shapes]
    # steps per window: an edit's schedule starts at its strength, so its length depends on the shift
    edit = strength if tl.init is not None else 1.0
    counts = [len(schedule_for(sampling.steps, sh, edit)) - 1 for sh in shifts]
    total = sum(counts)
    for k, (s, e) in enumerate(windows):
        known = tl.known[s:e].copy()
        given = timeline.latent_mask(known, factor)
        z = None
        cond = Conditioning()
        if given.any() or tl.init is not None:
            with torch.inference_mode():
                z = vae.encode(frames_to_tensor(tl.window_pixels(s, e)))
        if given.any():
            cond = Conditioning(z, torch.from_numpy(given).float()[None])
        if plan is not None:
            cond = cond.with_layout(plan.layout((np.arange(s, e) - plan_from) / fps, factor))
        if references and ref_latents is None and s > 0 and tl.known[0]:
            with torch.inference_mode():  # the anchor: the clip's first frame, for every later window
                ref_latents = vae.encode(frames_to_tensor(tl.frames[:1]))
        done = sum(counts[:k])

        def report(i, n, x, done=done):
            if callback is not None:
                callback(done + i, total, x)

        lat = sample_latents(
            dit,
            text,
            null,
            shapes[k],
            [timeline.window_seed(seed, k)],
            sampling,
            cond,
            shift=shifts[k],
            init=z if tl.init is not None else None,
            strength=strength,
            callback=report,
            refs=ref_latents,
        )
        with torch.inference_mode():
            frames = tensor_to_frames(vae.decode(lat)[0])
        tl.frames[s:e][~known] = frames[~known]
        tl.known[s:e] = True
    return tl.frames
