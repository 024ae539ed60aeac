"""`nanosora train distill`: guidance distillation, one transformer pass per sampling step.

Classifier-free guidance evaluates the transformer twice a step (with the prompt and with
the empty prompt) and extrapolates: v = v_empty + g (v_prompt - v_empty). Here a student,
a copy of the trained transformer that also takes g (guided.GuidedDiT), learns to
give that guided velocity in one pass (Meng et al. 2023; FLUX.1-dev ships its model this
way). Its guidance embedding starts at zero, so the student starts as the teacher itself.

Each micro-batch is the teacher's training batch (cached latents, frame masks, text dropout,
times and noise from (seed, step, k), as in train_dit), with a scale g drawn per clip. The
teacher's two passes run as one batch without gradients; with given frames its second pass
keeps them and drops only the text, as the sampler's guidance does (flow.guidance_modes).
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nanosora import device, modeldir
from nanosora.config import DEFAULT_GUIDANCE
from nanosora.generation import flow
from nanosora.modelconfig import ModelConfig
from nanosora.networks.dit import DiT
from nanosora.networks.guided import GUIDANCE_RANGE, GuidedDiT
from nanosora.networks.text import pad_tokens
from nanosora.training import dist, train
from nanosora.training.objective import given_weight, noised_batch
from nanosora.training.train_dit import EMA, run_with_ema


@dataclass(frozen=True)
class DistillConfig:
    text_dropout: float = 0.1  # clips trained with the empty prompt: the student keeps it
    # a fine-tuning from trained weights: a short EMA horizon (about 200 steps) follows it
    ema: float = 0.995
    # scales are drawn uniformly from [1, 1 + GUIDANCE_RANGE]; exactly 1 (the plain velocity
    # that unguided steps use) this often; and the default scale this often, where sampling
    # spends nearly all its guided steps
    p_unguided: float = 0.2
    p_default: float = 0.0
    flow: flow.FlowConfig = flow.FlowConfig()
    cpu_bf16: bool = False


def draw_scales(b: int, rng: np.random.Generator, p_unguided: float, p_default: float = 0.0) -> torch.Tensor:
    """b guidance scales: 1 with probability p_unguided, the default with p_default, else uniform."""
    g = 1.0 + GUIDANCE_RANGE * rng.random(b)
    u = rng.random(b)
    g[u < p_unguided] = 1.0
    g[(u >= p_unguided) & (u < p_unguided + p_default)] = DEFAULT_GUIDANCE
    return torch.from_numpy(g).float()


def empty_prompts(null_text: torch.Tensor, b: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """b copies of the empty prompt (L0, D), padded to `length` tokens, with their mask."""
    n = null_text.shape[0]
    text = pad_tokens(null_text[None].expand(b, -1, -1), length)
    mask = torch.zeros(b, length, dtype=torch.bool)
    mask[:, :n] = True
    return text, mask


def distill_loss(student, teacher, latents, text, mask, null_text, step_seed, cfg: DistillConfig):
    """The student's error against the teacher's guided velocity on one micro-batch."""
    bt = noised_batch(student, latents, text, mask, null_text, step_seed, cfg)
    b, dev = len(bt.t), bt.x_t.device
    g = draw_scales(b, bt.rng, cfg.p_unguided, cfg.p_default).to(dev)
    length = max(bt.text.shape[1], null_text.shape[0])
    txt = pad_tokens(bt.text, length)
    msk = pad_tokens(bt.mask, length)
    e_txt, e_msk = (v.to(dev) for v in empty_prompts(null_text, b, length))
    with torch.no_grad(), device.autocast(dev, cfg.cpu_bf16):
        v = teacher(
            bt.x_t.repeat(2, 1, 1, 1, 1),
            bt.t.repeat(2),
            torch.cat([txt, e_txt]),
            torch.cat([msk, e_msk]),
            cond=bt.cond.for_passes(("full", "cond"), bt.x_t.shape[2]),
        ).float()
    v_text, v_empty = v.chunk(2)
    target = v_empty + g[:, None, None, None, None] * (v_text - v_empty)
    with device.autocast(dev, cfg.cpu_bf16):
        pred = student(bt.x_t, bt.t, bt.text, bt.mask, cond=bt.cond, guidance=g)
    return flow.velocity_loss(pred, target, given_weight(bt.cond.frame_mask))


def student_of(teacher: DiT) -> GuidedDiT:
    """A guidance-distilled copy of `teacher`: its weights, and a zero guidance embedding."""
    if isinstance(teacher, GuidedDiT):
        raise ValueError("the teacher is already guidance-distilled: give the transformer it was made from")
    student = GuidedDiT(teacher.cfg)
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("g_embed.") for k in missing), (missing, unexpected)
    return student


def train_distill(
    out: str | Path,
    teacher_dir: str | Path,
    tcfg: train.TrainConfig,
    source,
    dcfg: DistillConfig = DistillConfig(),
    progress: bool = True,
    stop_after: int | None = None,
) -> DiT:
    """Distil the transformer of the model directory `teacher_dir` on `source` (a latent
    cache, as for train_dit) into `out`, which is a complete model directory (the teacher's
    autoencoder and config, the student's EMA weights) at every checkpoint."""
    out, teacher_dir = Path(out), Path(teacher_dir)
    if dcfg.cpu_bf16 and device.device().type == "cpu":
        device.check_cpu_bf16()
    config = modeldir.read_config(teacher_dir)
    teacher = modeldir.load_dit(teacher_dir).requires_grad_(False)
    if source.latent_channels != teacher.cfg.latent_channels or source.text_dim != teacher.cfg.text_dim:
        raise ValueError(
            f"the cache holds {source.latent_channels}-channel latents and {source.text_dim}-wide text; "
            f"the teacher in {teacher_dir} takes {teacher.cfg.latent_channels} and {teacher.cfg.text_dim}"
        )
    rank, world = dist.setup()
    torch.manual_seed(tcfg.seed)
    student = student_of(teacher).to(device.device())
    teacher = teacher.to(device.device())
    ema = EMA(student, dcfg.ema)
    wrapped = dist.wrap(student, False)
    out.mkdir(parents=True, exist_ok=True)
    if teacher_dir.resolve() != out.resolve():
        shutil.copyfile(teacher_dir / "vae.safetensors", out / "vae.safetensors")

    def loss_fn(step: int, micro: int):
        k = rank * tcfg.accum + micro
        latents, text, mask, _ = source.batch(tcfg.batch, tcfg.seed, step, k)
        loss = distill_loss(
            wrapped, teacher, latents, text, mask, source.null_text, (tcfg.seed, step, k), dcfg
        )
        return loss, {}, len(latents) * world

    def config_parts(step: int) -> ModelConfig:
        run = {"step": step, "teacher": str(teacher_dir), **dataclasses.asdict(tcfg)}
        record = {"distill_train": {**run, "objective": dataclasses.asdict(dcfg)}}
        training = config.training | record
        return dataclasses.replace(config, dit=student.cfg, guidance_distilled=True, training=training)

    run_with_ema(out, student, wrapped, ema, tcfg, loss_fn, config_parts, rank, progress, stop_after)
    return student
