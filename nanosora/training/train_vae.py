"""`nanosora train vae`: the autoencoder on Flatland or a folder of videos.

Loss: L1 + structural term (1 - SSIM) on pixels in [-1, 1] + a small KL to a unit Gaussian,
the recipe of latent-diffusion autoencoders minus the adversarial term (not worth its cost
on flat shapes). At every checkpoint the run folder also becomes a usable model directory
(config.json with the latent shift and scale, vae.safetensors).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from nanosora import device, modelconfig, modeldir
from nanosora.config import VAEConfig
from nanosora.evaluation.metrics import ssim
from nanosora.networks.vae import VideoVAE
from nanosora.training import data, train


@dataclass(frozen=True)
class VAELoss:
    ssim: float = 0.5
    kl: float = 1e-6  # under Adam even this pulls latents towards zero; more erased small objects
    foreground: float = 10.0
    edges: float = 10.0


def pixel_weights(x: torch.Tensor, cfg: VAELoss) -> torch.Tensor:
    """Per-pixel L1 weights: 1, plus more where a pixel differs from its frame's mean colour
    (objects, not background) and where it differs from its neighbours (edges).

    Most pixels of a Flatland frame are background. With a plain mean the network learns
    the background first and the objects, their colours above all, thousands of steps
    later; weighting the rare pixels up made a 300-step overfit reach 30.8 dB instead of
    23.9 dB. On natural video the weights are milder but harmless."""
    fg = (x - x.mean(dim=(3, 4), keepdim=True)).abs().mean(1, keepdim=True)
    edge = (x - F.avg_pool3d(x, (1, 3, 3), 1, (0, 1, 1), count_include_pad=False)).abs().mean(1, keepdim=True)
    return 1 + cfg.foreground * fg + cfg.edges * edge


def latent_stats(vae: VideoVAE, source, buckets, seed: int = 12345, batches: int = 4, batch: int = 8):
    """Per-channel mean and standard deviation of the posterior means on held-out batches."""
    zs = []
    with torch.no_grad():
        for i in range(batches):
            _, samples = data.batch(source, buckets, batch, seed, i)
            mean, _ = vae.encode_dist(data.to_batch(samples))
            zs.append(mean.transpose(0, 1).flatten(1))
    z = torch.cat(zs, 1)
    std = z.std(1).clamp_min(1e-3)
    return tuple(round(v, 6) for v in z.mean(1).tolist()), tuple(round(v, 6) for v in std.tolist())


def train_vae(
    out: str | Path,
    cfg: VAEConfig,
    tcfg: train.TrainConfig,
    source=None,
    buckets=data.VAE_BUCKETS,
    loss_cfg: VAELoss = VAELoss(),
    progress: bool = True,
    stop_after: int | None = None,
    cpu_bf16: bool = False,
) -> VideoVAE:
    """cpu_bf16: the network under bf16 autocast (convolutions in bf16, the loss in fp32) on
    a CPU with native bf16; the project's default is fp32 on CPU."""
    out = Path(out)
    if cpu_bf16:
        device.check_cpu_bf16()
    source = source or data.FlatlandSource()
    torch.manual_seed(tcfg.seed)
    vae = VideoVAE(cfg)
    opt = train.adamw(vae.parameters(), tcfg)

    def loss_fn(step: int, micro: int):
        _, samples = data.batch(source, buckets, tcfg.batch, tcfg.seed, step * tcfg.accum + micro)
        x = data.to_batch(samples)
        with device.autocast(torch.device("cpu"), cpu_bf16):
            y, mean, logvar = vae(x, generator=train.step_generator(tcfg.seed, step * tcfg.accum + micro))
        y, mean, logvar = y.float(), mean.float(), logvar.float()
        l1 = ((y - x).abs() * pixel_weights(x, loss_cfg)).mean()
        s = ssim(y, x)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
        loss = l1 + loss_cfg.ssim * (1 - s) + loss_cfg.kl * kl
        return loss, {"l1": l1.item(), "ssim": s.item(), "kl": kl.item()}, len(samples)

    def on_checkpoint(step: int) -> None:
        vae.eval()
        shift, scale = latent_stats(vae, source, buckets)
        vae.train()
        final = dataclasses.replace(cfg, shift=shift, scale=scale)
        modeldir.save_weights(out / "vae.safetensors", vae)
        run = {"step": step, **dataclasses.asdict(tcfg), "cpu_bf16": cpu_bf16}
        modeldir.write_config(out, modelconfig.build(final, runs={"vae_train": run}, name=out.name))

    train.run(
        out, vae, opt, tcfg, loss_fn, on_checkpoint=on_checkpoint, progress=progress, stop_after=stop_after
    )
    return vae.eval()
