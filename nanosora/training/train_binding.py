"""The binding stage: the transformer fine-tuned to follow per-object layouts, and the
layout planner that makes them from captions (planner.py, layout.py).

    model (a trained model directory)
      --> its transformer with a zero-initialised layout projection, fine-tuned on a
          Flatland cache with each clip's exact layouts, dropped for a share of the rows
      --> a planner trained on Flatland captions and layouts (no pixels)
      --> out: a complete model directory (config.json says 'layout' and 'planner')

Step counts are fixed by the caller (the recipe), not by time, so the stage makes the same
model on every machine.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

from nanosora.networks.planner import PLANNER_PRESETS
from nanosora.training import train


@dataclass(frozen=True)
class BindingConfig:
    steps: int = 1000  # transformer steps
    batch: int = 32
    lr: float = 2e-4
    layout_dropout: float = 0.2
    # grounding losses' weights (grounding.py; DiTTrainConfig's); 0: the layout objective alone
    ground_cross: float = 0.0
    ground_self: float = 0.0
    object_weight: float = 0.0  # the loss inside objects' boxes weighted 1 + this (DiTTrainConfig's)
    planner_preset: str = "default"
    planner_scenes: int = 16000
    planner_steps: int = 3000
    seed: int = 1  # other batches than the transformer stage's
    planner_seed: int = 0  # the planner's scenes (its validation draws another seed)


def objective(b: BindingConfig, cpu_bf16: bool):
    from nanosora.training.train_dit import DiTTrainConfig

    return DiTTrainConfig(
        cpu_bf16=cpu_bf16,
        layout_dropout=b.layout_dropout,
        ground_cross=b.ground_cross,
        ground_self=b.ground_self,
        object_weight=b.object_weight,
    )


def planner_data(path: Path, b: BindingConfig, encoder, progress: bool):
    """The planner's training rows, encoded once and kept in the run folder (a rerun after an
    interruption reads them back instead of encoding every sentence again)."""
    import torch

    from nanosora.atomic import atomic_path
    from nanosora.training.train_planner import PlannerData, make_data
    from nanosora.world.heldout import exclusions

    if path.exists():
        return PlannerData(**torch.load(path, weights_only=True))
    data = make_data(b.planner_scenes, encoder, b.planner_seed, exclusions(), progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(dataclasses.asdict(data), tmp)
    return data


def train_planner_into(out: Path, b: BindingConfig, encoder, progress: bool = True) -> Path:
    """out/planner.safetensors: a planner trained on b.planner_scenes Flatland scenes (the
    benchmark's held-out combinations left out), resumable."""
    from nanosora.training.train_planner import train_planner

    run = out / "planner_run"
    data = planner_data(run / "data.pt", b, encoder, progress)
    tcfg = train.TrainConfig(
        steps=b.planner_steps, batch=64, lr=1e-3, warmup=100, ckpt_every=max(1, min(500, b.planner_steps))
    )
    train_planner(run, data, PLANNER_PRESETS[b.planner_preset], tcfg, progress)
    shutil.copyfile(run / "planner.safetensors", out / "planner.safetensors")
    return out / "planner.safetensors"


def train_binding(
    model: Path,
    out: Path,
    source,
    b: BindingConfig,
    cpu_bf16: bool,
    compile: bool,
    progress: bool = True,
    planner: Path | None = None,
    layout: bool = True,
) -> Path:
    """Fine-tune `model`'s transformer on `source` (a cache with layouts) into the model
    directory `out`. `planner`: a trained planner.safetensors to use (else one is trained).
    layout=False: the same fine-tune on the shipped objective, without layouts (a control)."""
    from nanosora.networks.text import TextEncoder
    from nanosora.training.train_dit import finetune_start, train_dit

    planner_cfg = PLANNER_PRESETS[b.planner_preset] if layout else None
    base = dataclasses.replace(finetune_start(model, out, compile), planner=planner_cfg)
    # a control without layouts has no regions to bound attention by
    cfg = dataclasses.replace(base.dit, layout=layout, regions=layout and base.dit.regions)
    train_dit(
        out,
        cfg,
        train.stage_schedule(b.steps, b.batch, b.lr, 50, b.seed),
        source,
        objective(b, cpu_bf16),
        base=base,
        progress=progress,
        compile=compile,
        init=model,
    )
    if layout:
        if planner is not None:
            shutil.copyfile(planner, out / "planner.safetensors")
        else:
            train_planner_into(out, b, TextEncoder.of(base.text), progress)
    return out
