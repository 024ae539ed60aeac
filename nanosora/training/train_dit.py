"""`nanosora train dit`: the diffusion transformer, by flow matching on cached latents.

Every micro-batch is identified by k = rank * accum + micro, and its data, timesteps, noise,
frame masks and text dropout all derive from (seed, step, k). So 2 processes with
accumulation 1 and 1 process with accumulation 2 see the same global batch and end with
the same weights (tests/test_distributed.py), and a resumed run repeats an unbroken one.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import torch

from nanosora import device, modeldir
from nanosora.modelconfig import ModelConfig
from nanosora.networks import routed
from nanosora.networks.dit import DiT, DiTConfig
from nanosora.training import dist, train
from nanosora.training.objective import (
    TEXT_WIDTH_STEP,
    DiTTrainConfig,
    batch_layout,
    batch_refs,
    check_objective,
    dit_loss,
    grounding_words,
    pad_width,
)


class EMA(torch.nn.Module):
    """An exponential moving average of a model's weights (the shipped weights).

    Its decay warms up with the step, min(decay, (1 + step) / (10 + step)), as timm's and
    ema-pytorch's do: a fixed 0.999 would still hold 37% of the initial weights after 1,000
    steps, which in a short run is most of what is shipped. The step comes from the loop, so
    a resumed run averages exactly as an unbroken one."""

    def __init__(self, model: torch.nn.Module, decay: float):
        super().__init__()
        self.decay = decay
        self.shadow = copy.deepcopy(model).requires_grad_(False)

    def decay_at(self, step: int | None) -> float:
        return self.decay if step is None else min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int | None = None) -> None:
        model = dist.unwrap(model)
        decay = self.decay_at(step)
        for s, p in zip(self.shadow.parameters(), model.parameters(), strict=True):
            # under FSDP2 the shadow stays whole on every rank (an all-gather per step: simple,
            # and the shipped weights are whole anyway)
            s.lerp_(dist.full(p.detach()), 1 - decay)


def allow_bucket_graphs() -> None:
    """Room for one static graph per latent bucket and padded text width (compiled training)."""
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 16)


def step_seconds(
    cfg: DiTConfig,
    source,
    batch: int,
    dcfg: DiTTrainConfig,
    compile: bool,
    steps: int = 48,
) -> float:
    """Mean seconds of one training step (forward, backward, AdamW) of a fresh transformer
    on `source`'s batches, as train_dit runs it: for fitting a stage into a time budget. The
    same `steps` batches run twice: the first pass compiles a graph for every bucket among
    them and touches the memory, the second is timed. (A median over one pass undercounts:
    its cheap image batches and its compiling batches both leave the middle. And the mix of
    buckets and text widths needs a few dozen batches to show: 16 undercounted.)"""
    import time

    torch.manual_seed(0)
    if compile:
        # dynamo's cache is keyed by DiT.forward's code, shared by all models: start afresh
        torch._dynamo.reset()
        allow_bucket_graphs()
    model = routed.new(cfg).to(device.device())
    step = torch.compile(model, dynamic=False) if compile else model
    opt = train.adamw(model.parameters(), train.TrainConfig(steps=1, batch=batch))
    check_objective(dcfg, source, cfg)
    object_words = grounding_words(dcfg, source, cfg)
    times = []
    for i in list(range(steps)) * 2:
        t0 = time.perf_counter()  # drawing the batch is part of a step too
        latents, text, mask, captions = source.batch(batch, 0, i, 0)
        if compile:
            text, mask = pad_width(text, mask, TEXT_WIDTH_STEP)
        refs = batch_refs(source, batch, (0, i, 0), dcfg.ref_p)
        layout = batch_layout(source, cfg, batch, (0, i, 0))
        words = object_words(captions, text.shape[1]) if object_words else None
        loss = dit_loss(step, latents, text, mask, source.null_text, (0, i, 0), dcfg, refs, layout, words)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    if compile:
        torch._dynamo.reset()
    return float(np.mean(times[steps:]))


def run_with_ema(
    out: Path,
    model: torch.nn.Module,
    wrapped: torch.nn.Module,
    ema: EMA,
    tcfg: train.TrainConfig,
    loss_fn,
    config,
    rank: int,
    progress: bool,
    stop_after: int | None,
) -> None:
    """The run every transformer training shares (train_dit, distill): AdamW and train.run,
    with rank 0 writing the EMA weights as dit.safetensors and `config(step)` (a ModelConfig,
    or None for weights alone) as config.json at every checkpoint, so the run folder is a
    model directory throughout; the process group is torn down however the run ends."""

    def on_checkpoint(step: int) -> None:
        if rank == 0:
            modeldir.save_weights(out / "dit.safetensors", ema.shadow)
            cfg = config(step)
            if cfg is not None:
                modeldir.write_config(out, cfg)

    try:
        train.run(
            out,
            wrapped,
            train.adamw(model.parameters(), tcfg),
            tcfg,
            loss_fn,
            extra_state={"ema": ema},
            on_checkpoint=on_checkpoint,
            progress=progress and rank == 0,
            stop_after=stop_after,
            rank=rank,
        )
    finally:
        dist.teardown()


def finetune_start(model: Path, out: Path, compile: bool) -> ModelConfig:
    """What a stage that fine-tunes `model`'s transformer into the model directory `out`
    starts from: the autoencoder copied, and the model's config with its transformer run
    kept as `dit_train_before` (train_dit writes this stage's as dit_train)."""
    import shutil

    if compile:
        torch._dynamo.reset()  # dynamo's cache is shared by every DiT in a process
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model / "vae.safetensors", out / "vae.safetensors")
    base = modeldir.read_config(model)
    runs = {("dit_train_before" if k == "dit_train" else k): v for k, v in base.training.items()}
    return dataclasses.replace(base, training=runs)


def train_dit(
    out: str | Path,
    cfg: DiTConfig,
    tcfg: train.TrainConfig,
    source,
    dcfg: DiTTrainConfig = DiTTrainConfig(),
    progress: bool = True,
    stop_after: int | None = None,
    base: ModelConfig | None = None,
    compile: bool = False,
    fsdp: bool | None = None,
    init: str | Path | None = None,
) -> DiT:
    """Train on `source` (a cache.LatentCache or anything with its `batch` and `null_text`).
    `base`: the model's config without its transformer (autoencoder, text, fps, window...);
    config.json is that with this transformer and its run (without a base: the weights alone).
    `fsdp`: shard with FSDP2 under torchrun (None: for models of 100M parameters or more).
    `init`: a model directory whose transformer weights it starts from (a fine-tune), instead
    of a fresh initialisation; a resumed run continues from its checkpoint either way."""
    out = Path(out)
    check_objective(dcfg, source, cfg)
    if dcfg.cpu_bf16 and device.device().type == "cpu":
        device.check_cpu_bf16()
    if compile:
        device.check_compile(device.device())
    rank, world = dist.setup()
    torch.manual_seed(tcfg.seed)
    model = routed.new(cfg).to(device.device())
    if init is not None:
        # a transformer that newly reads layouts starts from one that did not: its layout
        # projection keeps its zero initialisation (so it starts as that model); any other
        # mismatch is an error
        missing, unexpected = model.load_state_dict(modeldir.load_dit(init).state_dict(), strict=False)
        missing = [k for k in missing if not k.startswith("layout_proj.")]
        if missing or unexpected:
            raise ValueError(
                f"{init}: its transformer does not fit: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
    ema = EMA(model, dcfg.ema)
    wrapped = dist.wrap(model, fsdp)
    if compile:
        # static shapes: one graph per latent bucket (4 in the default cache) and text width
        # (padded to a multiple of TEXT_WIDTH_STEP below). Under CPU bf16 a static graph
        # compiled in 7 s against 40 s with dynamic shapes, for the same step time; unpadded
        # widths recompiled on nearly every step.
        allow_bucket_graphs()
        wrapped = torch.compile(wrapped, dynamic=False)
    null = source.null_text
    object_words = grounding_words(dcfg, source, cfg)

    def loss_fn(step: int, micro: int):
        k = rank * tcfg.accum + micro
        latents, text, mask, captions = source.batch(tcfg.batch, tcfg.seed, step, k)
        if compile:
            text, mask = pad_width(text, mask, TEXT_WIDTH_STEP)
        refs = batch_refs(source, tcfg.batch, (tcfg.seed, step, k), dcfg.ref_p)
        layout = batch_layout(source, cfg, tcfg.batch, (tcfg.seed, step, k))
        words = object_words(captions, text.shape[1]) if object_words else None
        loss = dit_loss(wrapped, latents, text, mask, null, (tcfg.seed, step, k), dcfg, refs, layout, words)
        return loss, {}, len(latents) * world

    # a cache knows its captions' words; a stream of clips (data.make_source) does not. A
    # fine-tune knows what its base saw as well as its own cache's words.
    seen = tuple(source.vocabulary()) if hasattr(source, "vocabulary") else ()
    vocab = tuple(sorted({*seen, *(base.vocabulary if base else ())}))

    def config(step: int) -> ModelConfig | None:
        if base is None:
            return None
        run = {"step": step, **dataclasses.asdict(tcfg), "objective": dataclasses.asdict(dcfg)}
        return dataclasses.replace(
            base,
            dit=cfg,
            training=base.training | {"dit_train": run},
            vocabulary=vocab,
            references=base.references or dcfg.ref_p > 0,
        )

    run_with_ema(out, model, wrapped, ema, tcfg, loss_fn, config, rank, progress, stop_after)
    return model
