"""`nanosora train lora`: a LoRA adapter on a trained model's transformer, from a folder of
clips. The base weights stay frozen; only the adapter trains, with the transformer's own
flow-matching loss (objective.dit_loss), so it learns every mode the base learned. The run
folder holds checkpoints (exact resume, as every training command) and, at each of them,
the adapter file and its settings (lora.save)."""

from __future__ import annotations

from pathlib import Path

import torch

from nanosora import modeldir
from nanosora.networks import lora
from nanosora.training import train
from nanosora.training.objective import dit_loss
from nanosora.training.train_dit import DiTTrainConfig


def train_lora(
    out: str | Path,
    model_dir: str | Path,
    settings: lora.LoraSettings,
    tcfg: train.TrainConfig,
    source,
    dcfg: DiTTrainConfig | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    data_name: str = "",
) -> Path:
    """Train an adapter for the model at `model_dir` on `source` (a cache.LatentCache or
    cache.OnTheFly made with that model's autoencoder and text encoder); returns its file."""
    from nanosora import device

    dcfg = dcfg or DiTTrainConfig()
    settings.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if dcfg.cpu_bf16 and device.device().type == "cpu":
        device.check_cpu_bf16()
    cfg = modeldir.read_config(model_dir)
    if source.latent_channels != cfg.dit.latent_channels or source.text_dim != cfg.dit.text_dim:
        raise ValueError(
            f"the training data gives {source.latent_channels}-channel latents and {source.text_dim}-wide "
            f"text; {model_dir} takes {cfg.dit.latent_channels} and {cfg.dit.text_dim}"
        )
    base = lora.base_sha256(model_dir)
    dit = modeldir.load_dit(model_dir).to(device.device())
    dit.requires_grad_(False)
    torch.manual_seed(tcfg.seed)  # lora_A's random start: the same run from the same seed
    lora.add(dit, settings)
    params = [p for n, p in dit.named_parameters() if "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    null = source.null_text

    def loss_fn(step: int, micro: int):
        latents, text, mask, _ = source.batch(tcfg.batch, tcfg.seed, step, micro)
        return dit_loss(dit, latents, text, mask, null, (tcfg.seed, step, micro), dcfg), {}, len(latents)

    def on_checkpoint(step: int) -> None:
        info = lora.AdapterInfo(settings, base, cfg.name, step, {"data": data_name})
        lora.save(out, dit, info)

    train.run(
        out,
        dit,
        train.adamw(params, tcfg),
        tcfg,
        loss_fn,
        on_checkpoint=on_checkpoint,
        progress=progress,
        stop_after=stop_after,
    )
    return out / lora.FILE
