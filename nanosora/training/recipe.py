"""`nanosora train --preset P --out DIR`: the whole model from scratch, stage by stage.

    DIR/vae     the autoencoder's run (checkpoints, log, loss plot, model files)
    DIR/cache   Flatland clips encoded once: latents and caption embeddings
    DIR/model   the transformer's run; at the end a complete model directory
    DIR/binding with a binding stage (Recipe.binding_steps): the transformer fine-tuned to
                follow per-object layouts, and their planner (train_binding.py)
    DIR/ground  with a grounding stage (Recipe.ground_steps): the layout model fine-tuned
                with grounding losses (grounding.py)

The last stage's folder is the recipe's model directory.

Every stage resumes: rerunning the command after an interruption continues where it
stopped (checkpoints for training, finished shards for the cache). The held-out
colour-shape-motion combinations of the world benchmark never enter the cache.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from nanosora import device, modeldir
from nanosora.atomic import atomic_path
from nanosora.config import VAE_PRESETS, to_dict
from nanosora.networks.dit import DIT_PRESETS
from nanosora.training import cache, data, train


@dataclass(frozen=True)
class Recipe:
    vae_preset: str = "default"
    vae_steps: int = 8000
    vae_batch: int = 8
    vae_lr: float = 1e-3
    # bf16 autocast for the autoencoder's convolutions (where the CPU has native bf16): more
    # steps a minute for the same held-out PSNR (docs/measurements.md)
    vae_cpu_bf16: bool = True
    cache_clips: int = 8000
    cache_shard: int = 1000
    # a token per caption sentence beside the word tokens (text.TextEncoder): one per object
    sentence_tokens: bool = False
    # how often a cached scene holds 1, 2 and 3 objects
    objects_p: tuple[float, float, float] = (0.4, 0.35, 0.25)
    # how often a cached scene of 2-3 objects comes with its colour-swapped minimal pair
    pairs_p: float = 0.0
    dit_preset: str = "default"
    # the most steps the transformer takes; with a time budget, what fits it decides
    dit_steps: int = 12500
    # A time budget for the transformer stage (None: exactly dit_steps). Step times differ
    # widely between CPUs with native bf16 (with AMX or without): the stage measures its
    # own step time once, trains min(dit_steps, budget / step time)
    # steps, and writes that count down (model/steps.json) so that a rerun resumes the very
    # same schedule.
    dit_minutes: float | None = None
    # A time budget for the whole recipe (None: none): the transformer stage gets what the
    # autoencoder and the cache left of it, less a margin for compiling and the last save,
    # so that the recipe fits on a slower CPU too. dit_minutes, when set, takes precedence.
    # two hours less a margin for starting the process and the last save
    total_minutes: float | None = 116.0
    dit_batch: int = 32
    # 1e-3 rather than 5e-4: lower training loss on identical batches all through the run, and
    # more validation clips passed (docs/measurements.md)
    dit_lr: float = 1e-3
    # bf16 autocast for the transformer where the CPU multiplies bf16 natively (AVX512-BF16 or
    # AMX: about twice the steps a minute); fp32 on any other CPU, where bf16 is emulated
    dit_cpu_bf16: bool = True
    # torch.compile for the transformer's training step: fused elementwise work, for a minute
    # or two of compiling at the start
    dit_compile: bool = True
    # A stage fine-tunes the transformer for binding_steps to follow per-object layouts
    # (train_binding.py), and trains the layout planner that makes them from captions. A
    # fixed step count, not a time budget, so that the stage makes the same model on every
    # machine. 0: no such stage.
    binding_steps: int = 891
    binding_lr: float = 2e-4
    binding_layout_dropout: float = 0.2
    planner_scenes: int = 16000
    planner_steps: int = 3000
    # A stage after binding fine-tunes the layout model for ground_steps more with the
    # grounding losses (grounding.py): the cross-attention term ties each object's words to
    # its box; the self-attention term, which pulls apart the tokens where objects meet, is
    # off. The binding stage's planner is kept. 0: no such stage.
    ground_steps: int = 799
    ground_cross: float = 0.05
    ground_self: float = 0.0
    # The finished layout model samples with regional cross-attention (DiTConfig.regions,
    # layout.region_mask): a token inside an object's box reads that object's words only,
    # with no training of its own (the stages above train without it); and with regional
    # self-attention (regions_self, layout.self_region_mask): it reads no token of another
    # object's box.
    regions: bool = True
    regions_self: bool = True
    seed: int = 0


# minutes a whole-recipe budget keeps back from the transformer: measuring its step time,
# compiling, and the checkpoints' saves
MARGIN_MIN = 4.0

RECIPES: dict[str, Recipe] = {
    "default": Recipe(),
    # minutes, not hours: for trying the whole recipe (and for tests)
    "tiny": Recipe(
        vae_preset="tiny",
        vae_steps=20,
        vae_batch=2,
        cache_clips=16,
        cache_shard=8,
        dit_preset="tiny",
        dit_steps=20,
        dit_batch=4,
        dit_compile=False,  # compiling would take longer than the tiny run itself
        total_minutes=None,
        binding_steps=2,
        ground_steps=2,
        planner_scenes=16,
        planner_steps=4,
    ),
    # A research design (docs/world-model-v2.md): 1x1 patches, width 128, routed blocks
    # (routed.py), a token per caption sentence; the autoencoder shorter to give its dearer
    # transformer steps more of the two hours. Not the default: it trained a weaker model.
    "v2": Recipe(vae_steps=6000, sentence_tokens=True, dit_preset="v2", total_minutes=108.0, binding_steps=0),
    # The data levers (docs/world-model-v2.md) on the shipped design with sentence tokens:
    # scenes of 2-3 objects oversampled, and half of them followed by their colour-swapped
    # minimal pair; 6,000 steps, to compare with the design at equal steps.
    "v2data": Recipe(
        vae_steps=6000,
        sentence_tokens=True,
        objects_p=(0.2, 0.4, 0.4),
        pairs_p=0.5,
        dit_steps=6000,
        binding_steps=0,
    ),
}


def dit_steps(
    minutes: float | None, cap: int, model: Path, cfg, source, batch: int, dit_cfg, compile: bool, log=print
) -> int:
    """A transformer stage's step count: `cap`, or what fits `minutes` here if fewer,
    measured once and kept in model/steps.json (a rerun reads it back: the schedule must not
    move)."""
    import json

    from nanosora.training.train_dit import step_seconds

    if minutes is None:
        return cap
    record = model / "steps.json"
    if record.exists():
        return int(json.loads(record.read_text())["steps"])
    secs = step_seconds(cfg, source, batch, dit_cfg, compile)
    steps = max(1, min(cap, int(minutes * 60 / secs)))
    log(f"transformer step {secs:.3f} s here: {steps} steps fit {minutes:.1f} min")
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps({"steps": steps, "step_seconds": round(secs, 4), "minutes": minutes}))
    return steps


def _spent(out: Path, stage: str | None = None, seconds: float = 0.0) -> dict:
    """Wall time of each stage over every invocation (out/times.json), adding `seconds` to
    `stage`: what a whole-recipe budget has left for the transformer after a resumed run."""
    import json

    f = out / "times.json"
    times = json.loads(f.read_text()) if f.exists() else {}
    if stage is not None:
        times[stage] = times.get(stage, 0.0) + seconds
        with atomic_path(f) as tmp:
            tmp.write_text(json.dumps(times))
    return times


def run(name: str, out: str | Path, progress: bool = True, log=print) -> Path:
    from nanosora.training.train_dit import DiTTrainConfig, train_dit
    from nanosora.training.train_vae import train_vae
    from nanosora.world.heldout import exclusions

    r = RECIPES[name]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    times = {}

    t = time.perf_counter()
    log(f"[1/3] autoencoder ({r.vae_preset}, {r.vae_steps} steps) -> {out / 'vae'}")
    vcfg = train.TrainConfig(
        steps=r.vae_steps,
        batch=r.vae_batch,
        lr=r.vae_lr,
        warmup=min(100, r.vae_steps // 10 + 1),
        ckpt_every=max(1, min(250, r.vae_steps)),
        seed=r.seed,
    )
    bf16 = device.cpu_has_bf16()
    train_vae(
        out / "vae", VAE_PRESETS[r.vae_preset], vcfg, progress=progress, cpu_bf16=r.vae_cpu_bf16 and bf16
    )
    times["vae_s"] = time.perf_counter() - t
    _spent(out, "vae_s", times["vae_s"])

    t = time.perf_counter()
    log(f"[2/3] latent cache ({r.cache_clips} Flatland clips, held-out combinations left out)")
    vae = modeldir.load_vae(out / "vae")
    source = data.make_source(
        "flatland", exclude=exclusions(), for_text=True, objects_p=r.objects_p, pairs_p=r.pairs_p
    )
    cache.build(
        out / "cache",
        vae,
        source,
        n=r.cache_clips,
        shard_size=r.cache_shard,
        seed=r.seed,
        progress=progress,
        sentence_tokens=r.sentence_tokens,
    )
    times["cache_s"] = time.perf_counter() - t
    _spent(out, "cache_s", times["cache_s"])

    t = time.perf_counter()
    budget = f"{r.dit_steps} steps" + (f" or {r.dit_minutes:g} min" if r.dit_minutes else "")
    log(f"[3/3] transformer ({r.dit_preset}, {budget}) -> {out / 'model'}")
    lc = cache.LatentCache(out / "cache")
    preset = DIT_PRESETS[r.dit_preset]
    dcfg = dataclasses.replace(preset, latent_channels=lc.latent_channels, text_dim=lc.text_dim)
    model = out / "model"
    model.mkdir(exist_ok=True)
    shutil.copyfile(out / "vae" / "vae.safetensors", model / "vae.safetensors")
    compile_dit = r.dit_compile and device.can_compile(device.device())
    if r.dit_compile and not compile_dit:
        log("no C++ compiler found: the transformer trains uncompiled (about 1.14x slower)")
    dit_cfg = DiTTrainConfig(cpu_bf16=r.dit_cpu_bf16 and bf16)
    minutes = r.dit_minutes
    if minutes is None and r.total_minutes is not None:
        before = _spent(out)
        spent = (before.get("vae_s", 0) + before.get("cache_s", 0)) / 60
        minutes = max(1.0, r.total_minutes - spent - MARGIN_MIN)
    steps = dit_steps(minutes, r.dit_steps, model, dcfg, lc, r.dit_batch, dit_cfg, compile_dit, log)
    tcfg = train.stage_schedule(steps, r.dit_batch, r.dit_lr, 250, r.seed)
    base = dataclasses.replace(
        modeldir.read_config(out / "vae"),
        name=name,
        text=cache.text_config(lc),
        window=cache.WINDOW,
        recipe=to_dict(r),
    )
    train_dit(
        model,
        dcfg,
        tcfg,
        lc,
        dit_cfg,
        base=base,
        progress=progress,
        compile=compile_dit,
    )
    times["dit_s"] = time.perf_counter() - t
    _spent(out, "dit_s", times["dit_s"])
    if r.binding_steps:
        from nanosora.training.train_binding import BindingConfig, train_binding

        t = time.perf_counter()
        log(f"[binding] {r.binding_steps} steps with layouts, and the planner -> {out / 'binding'}")
        b = BindingConfig(
            steps=r.binding_steps,
            batch=r.dit_batch,
            lr=r.binding_lr,
            layout_dropout=r.binding_layout_dropout,
            planner_scenes=r.planner_scenes,
            planner_steps=r.planner_steps,
            seed=r.seed + 1,  # as the binding ablation ran it
        )
        model = train_binding(model, out / "binding", lc, b, dit_cfg.cpu_bf16, compile_dit, progress)
        times["binding_s"] = time.perf_counter() - t
        _spent(out, "binding_s", times["binding_s"])
    if r.binding_steps and r.ground_steps:
        t = time.perf_counter()
        log(f"[grounding] {r.ground_steps} steps with grounding losses -> {out / 'ground'}")
        # the binding stage's settings (and seed, as the grounding ablation ran it), its losses on
        g = dataclasses.replace(
            b, steps=r.ground_steps, ground_cross=r.ground_cross, ground_self=r.ground_self
        )
        planner = model / "planner.safetensors"
        model = train_binding(model, out / "ground", lc, g, dit_cfg.cpu_bf16, compile_dit, progress, planner)
        times["ground_s"] = time.perf_counter() - t
        _spent(out, "ground_s", times["ground_s"])
    if r.binding_steps and r.regions:
        cfg = modeldir.read_config(model)
        dit = dataclasses.replace(cfg.dit, regions=True, regions_self=r.regions_self)
        modeldir.write_config(model, dataclasses.replace(cfg, dit=dit))
    spent = ", ".join(f"{k[:-2]} {v / 60:.1f} min" for k, v in times.items())
    log(f"stage wall times (this invocation): {spent}")
    return model
