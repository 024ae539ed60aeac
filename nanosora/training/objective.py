"""What the transformer's training loss is made of: each micro-batch's frame masks, noise,
times, text dropout, references and layouts (noised_batch), and the loss on it (dit_loss):
flow matching, weighted where frames are given or objects are, plus the grounding terms.

A source (cache.LatentCache, cache.OnTheFly) says what it can give: `has_layouts` (each
clip's per-object boxes, for a layout model) and `has_references` (frames from across a cut).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from nanosora import device
from nanosora.generation import flow, reference
from nanosora.networks import routed
from nanosora.networks.conditioning import Conditioning
from nanosora.networks.dit import DiTConfig
from nanosora.networks.text import pad_tokens
from nanosora.training import dist, train
from nanosora.training.grounding import Grounding, grounding_losses, object_weight, token_objects

# Frame-mask modes and how often each is drawn: none teaches text to video; first frame,
# image to video; prefix, extension forward; suffix, backward; both ends, connecting two
# clips and looping; last frame, animating towards a given end.
MASK_MODES = {"none": 0.5, "first": 0.15, "prefix": 0.12, "suffix": 0.05, "last": 0.05, "ends": 0.13}


@dataclass(frozen=True)
class DiTTrainConfig:
    text_dropout: float = 0.1  # for classifier-free guidance
    ema: float = 0.999
    flow: flow.FlowConfig = flow.FlowConfig()
    # bf16 autocast on a CPU with native bf16 (2.2-2.4x a training step here); the default keeps
    # the project's fp32 on CPU. CUDA always uses bf16 autocast.
    cpu_bf16: bool = False
    # how often a batch comes with reference frames (reference.py): each clip shown a frame of
    # its own scene after a cut, so that shots and later windows keep who is in the world
    ref_p: float = 0.0
    # Given and reference latents noised to a random time in [0, context_noise] (0: clean), so
    # that the transformer learns not to copy the flaws of what it is given: generated frames,
    # decoded and encoded again, are never clean (Diffusion Forcing, arXiv 2407.01392, trains
    # on noisy context; SVD and CogVideoX noise their conditioning image)
    context_noise: float = 0.0
    # how often a batch row trains without its layout (a model with DiTConfig.layout), so that
    # the same model still generates from text alone; a row without text has no layout either
    layout_dropout: float = 0.2
    # weights of the grounding losses (grounding.py; a model with DiTConfig.layout, on a
    # cache with layouts): each object's words attended from inside its box (cross), and no
    # attention from one object's box into another's (self). 0: not computed.
    ground_cross: float = 0.0
    ground_self: float = 0.0
    # the flow loss weighted 1 + object_weight inside the objects' true boxes (a cache with
    # layouts; grounding.object_weight), so that shapes and corners are not drowned by the
    # background; 0: the plain mean
    object_weight: float = 0.0

    @property
    def grounds(self) -> bool:
        return self.ground_cross > 0 or self.ground_self > 0


def frame_mask(mode: str, frames: int, rng: np.random.Generator) -> np.ndarray:
    """A 0/1 mask over latent frames: 1 where the clean latent is given."""
    m = np.zeros(frames, dtype=np.float32)
    if frames < 2 or mode == "none":
        return m
    if mode == "first":
        m[0] = 1
    elif mode == "last":
        m[-1] = 1
    elif mode == "prefix":
        m[: int(rng.integers(1, frames))] = 1
    elif mode == "suffix":
        m[int(rng.integers(1, frames)) :] = 1
    elif mode == "ends":
        k = int(rng.integers(1, max(2, frames // 2)))
        m[:k] = 1
        m[frames - k :] = 1
    else:
        raise ValueError(f"unknown frame-mask mode {mode!r}; known: {', '.join(MASK_MODES)}")
    return m


def draw_masks(batch: int, frames: int, rng: np.random.Generator) -> torch.Tensor:
    modes, p = list(MASK_MODES), np.array(list(MASK_MODES.values()))
    picks = rng.choice(len(modes), size=batch, p=p / p.sum())
    return torch.from_numpy(np.stack([frame_mask(modes[i], frames, rng) for i in picks]))


# text widths under torch.compile are rounded up to a multiple of this, so that a few graphs
# serve every batch (padding is masked out: the loss is the same up to rounding)
TEXT_WIDTH_STEP = 64


def pad_width(text: torch.Tensor, mask: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """text (B, L, D) and mask (B, L) zero-padded to the next multiple of `step` tokens."""
    length = text.shape[1] + -text.shape[1] % step
    return pad_tokens(text, length), pad_tokens(mask, length)


class Batch(NamedTuple):
    """One micro-batch made ready for the transformer (see noised_batch)."""

    x_t: torch.Tensor  # noised latents
    t: torch.Tensor  # their times
    text: torch.Tensor  # prompts, some replaced by the empty prompt (text dropout)
    mask: torch.Tensor
    cond: Conditioning  # the clean latents with their frame mask (B, T), and layouts
    target: torch.Tensor  # the flow-matching velocity
    rng: np.random.Generator  # this micro-batch's further draws
    route: torch.Tensor | None  # (B, K) tokens kept in the routed blocks (DiTConfig.route)
    kept: torch.Tensor | None = None  # (B,) bool: rows that kept their text (no text dropout)


def check_objective(dcfg: DiTTrainConfig, source, cfg: DiTConfig | None = None) -> None:
    """Refuse reference frames, context noise or layouts that cannot be trained, before
    anything is written."""
    if cfg is not None and cfg.layout and not source.has_layouts:
        raise ValueError(
            "a transformer that reads layouts (DiTConfig.layout) needs a latent cache built from "
            "Flatland, which caches each clip's per-object boxes; this data has none (a folder of "
            "clips, or a cache built before layouts were cached): rebuild it with `nanosora cache`"
        )
    if not 0 <= dcfg.ref_p <= 1:
        raise ValueError(f"ref_p {dcfg.ref_p} is not valid: use a share in [0, 1]")
    if not 0 <= dcfg.context_noise < 1:
        raise ValueError(f"context_noise {dcfg.context_noise} is not valid: use a time in [0, 1)")
    if dcfg.ground_cross < 0 or dcfg.ground_self < 0:
        raise ValueError(
            f"grounding weights (cross {dcfg.ground_cross}, self {dcfg.ground_self}) must be 0 or more"
        )
    if dcfg.object_weight < 0:
        raise ValueError(f"object_weight {dcfg.object_weight} is not valid: use 0 or more")
    if dcfg.object_weight > 0 and cfg is not None and not cfg.layout:
        raise ValueError(
            "object_weight weighs the loss inside each object's true box: it needs a transformer "
            "that reads layouts (DiTConfig.layout) and a cache with layouts"
        )
    if dcfg.grounds and cfg is not None and not cfg.layout:
        raise ValueError(
            "the grounding losses compare attention with each object's box: they need a "
            "transformer that reads layouts (DiTConfig.layout) and a cache with layouts"
        )
    if not 0 <= dcfg.layout_dropout <= 1:
        raise ValueError(f"layout_dropout {dcfg.layout_dropout} is not valid: use a share in [0, 1]")
    if dcfg.ref_p > 0 and not source.has_references:
        raise ValueError(
            "reference frames (ref_p) need a latent cache built from Flatland, which caches each "
            "clip's reference frame; this data has none (a folder of clips, or a cache built "
            "without them): rebuild it with `nanosora cache`, or train with ref_p 0"
        )


def batch_refs(source, batch: int, step_seed: tuple[int, int, int], p: float) -> torch.Tensor | None:
    """The reference latents of this micro-batch's clips (source.references), with probability
    p (DiTTrainConfig.ref_p), else None: a draw of its own, so that without references every
    other draw is what it was."""
    if p <= 0 or np.random.default_rng([*step_seed, 11]).random() >= p:
        return None
    seed, step, k = step_seed
    return source.references(batch, seed, step, k)


def batch_layout(source, cfg: DiTConfig, batch: int, step_seed: tuple[int, int, int]):
    """The layouts of this micro-batch's clips (source.layouts) for a model that reads them
    (DiTConfig.layout), else None."""
    if not cfg.layout:
        return None
    seed, step, k = step_seed
    return source.layouts(batch, seed, step, k)


def noised_batch(
    model,
    latents,
    text,
    mask,
    null_text,
    step_seed: tuple[int, int, int],
    cfg,
    refs=None,
    context_noise: float = 0.0,
    layout=None,
    layout_dropout: float = 0.0,
) -> Batch:
    """Frame masks, text dropout, times and noise for one micro-batch, all drawn from
    step_seed = (seed, step, k); moved to the model's device. `cfg` has text_dropout and flow.
    refs: reference latents (B, C, R, h, w) to put before the clips (reference.prepend), or
    None; context_noise: DiTTrainConfig's. layout: the clips' layouts (layout.Layout), dropped
    with the text and, besides, for a `layout_dropout` share of the rows."""
    seed, step, k = step_seed
    rng = np.random.default_rng([seed, step, k, 7])
    g = train.step_generator(seed, step, k)
    b, _, T, h, w = latents.shape
    fm = draw_masks(b, T, rng)
    drop = torch.from_numpy(rng.random(b) < cfg.text_dropout)
    if drop.any():
        text, mask = text.clone(), mask.clone()
        n = null_text.shape[0]
        if text.shape[1] < n:
            text, mask = pad_tokens(text, n), pad_tokens(mask, n)
        text[drop] = 0
        mask[drop] = False
        text[drop, :n] = null_text
        mask[drop, :n] = True
    base = dist.unwrap(model)
    t = flow.sample_t(b, flow.shift_for(flow.positions(latents.shape), base.cfg.flow_shift), g, cfg.flow)
    noise = torch.randn(latents.shape, generator=g)
    x_t, target = flow.noisy(latents, noise, t)
    cond = latents
    if refs is not None or context_noise > 0:
        x_t, target, cond, fm = _with_context(x_t, target, latents, fm, t, refs, step_seed, context_noise)
    if layout is not None:  # a draw of its own, so that the clip's draws stay what they were
        off = torch.from_numpy(np.random.default_rng([*step_seed, 17]).random(b) < layout_dropout)
        layout = layout.dropped(drop | off)
        if refs is not None:
            layout = layout.prepend_empty(refs.shape[2])
    dev = next(model.parameters()).device
    route = None
    if base.cfg.routes:
        tokens = math.prod(base.grid(latents.shape))
        route = routed.route_indices(b, tokens, base.cfg.route_keep, rng).to(dev)
    x_t, t, text, mask, target = (v.to(dev) for v in (x_t, t, text, mask, target))
    cond = Conditioning(cond, fm, layout).to(dev)
    return Batch(x_t, t, text, mask, cond, target, rng, route, (~drop).to(dev))


def _with_context(x_t, target, latents, fm, t, refs, step_seed, context_noise):
    """noised_batch's reference frames and context noise, drawn from generators of their own
    (so that the clip's own draws stay what they were): the conditioning latents with given
    frames noised to a random time in [0, cfg.context_noise], and references before the clip
    (their noisy input at the clip's time, as a given frame's is; their loss weighs nothing)."""
    rng = np.random.default_rng([*step_seed, 13])
    g = torch.Generator().manual_seed(int(rng.integers(2**62)))
    b = len(latents)
    cond = latents
    if refs is not None:
        x_ref, _ = flow.noisy(refs, torch.randn(refs.shape, generator=g), t)
        x_t = torch.cat([x_ref, x_t], 2)
        target = torch.cat([torch.zeros_like(refs), target], 2)
        cond, fm = reference.prepend(latents, refs, fm)
    if context_noise > 0:
        s = torch.from_numpy(rng.random(b) * context_noise).float()[:, None, None, None, None]
        noisy = (1 - s) * cond + s * torch.randn(cond.shape, generator=g)
        cond = torch.where(reference.given(fm)[:, None, :, None, None], noisy, cond)
    return x_t, target, cond, fm


def dit_loss(
    model,
    latents,
    text,
    mask,
    null_text,
    step_seed: tuple[int, int, int],
    cfg: DiTTrainConfig,
    refs=None,
    layout=None,
    words=None,
):
    """The flow-matching loss of one micro-batch; randomness from step_seed = (seed, step, k);
    refs: reference latents before the clips, layout: their layouts (noised_batch). words
    (B, K, L): each object's text tokens (grounding.token_objects), for the grounding losses
    (cfg.ground_cross, cfg.ground_self), which compare attention with the true layout's boxes
    whether or not the row was given them, and for a transformer with regions
    (DiTConfig.regions), which trains with its attention bounded as it samples."""
    if layout is not None and words is not None and dist.unwrap(model).cfg.regions:
        layout = layout.with_words(words)
    bt = noised_batch(
        model,
        latents,
        text,
        mask,
        null_text,
        step_seed,
        cfg,
        refs,
        cfg.context_noise,
        layout,
        cfg.layout_dropout,
    )
    grounds = cfg.grounds and words is not None and layout is not None
    with device.autocast(bt.x_t.device, cfg.cpu_bf16):
        extra = {"maps": True} if grounds else {}  # GuidedDiT and distillation take no maps
        if bt.route is not None:  # a RoutedDiT's (routed.py)
            extra["route"] = bt.route
        pred = model(bt.x_t, bt.t, bt.text, bt.mask, cond=bt.cond, **extra)
    if grounds:
        pred, maps = pred
    weight = given_weight(bt.cond.frame_mask)
    if layout is not None:
        true = layout if refs is None else layout.prepend_empty(refs.shape[2])
        if cfg.object_weight > 0:
            weight = weight * object_weight(true, bt.x_t.shape, cfg.object_weight).to(weight.device)
    loss = flow.velocity_loss(pred, bt.target, weight)
    if not grounds:
        return loss
    base = dist.unwrap(model)
    grid = base.grid(bt.x_t.shape)
    cov = true.coverage(grid, base.cfg.patch[0]).to(pred.device)
    words = torch.nn.functional.pad(words, (0, bt.text.shape[1] - words.shape[-1]))  # the null prompt's width
    g = Grounding(cov, words.to(pred.device)).masked(bt.kept)
    cross, self_ = grounding_losses(maps, g)
    return loss + cfg.ground_cross * cross + cfg.ground_self * self_


def given_weight(frame_mask: torch.Tensor) -> torch.Tensor:
    """The loss weight of each latent: given and reference frames are not predicted, so they
    weigh nothing."""
    return (~reference.given(frame_mask)).to(torch.float32)[:, None, :, None, None]


def grounding_words(dcfg: DiTTrainConfig, source, cfg: DiTConfig):
    """For the grounding losses and regional attention: a function (captions, text width) ->
    each object's text tokens (B, K, L) (grounding.token_objects, with the tokenizer the
    cache's text was made with), or None when neither needs them."""
    if not (dcfg.grounds or cfg.regions):
        return None
    from nanosora.networks import text
    from nanosora.training import cache
    from nanosora.world.layout import MAX_OBJECTS

    tc = cache.text_config(source)
    tok = text.load_tokenizer(text.resolve(tc.encoder))
    return lambda captions, length: token_objects(tok, captions, MAX_OBJECTS, length, tc.max_tokens)
