"""Shared test helpers."""

from __future__ import annotations

import numpy as np
import torch


class FakeCache:
    """A latent cache in memory: fixed latents and text embeddings (no encoder needed)."""

    has_layouts = False
    has_references = False

    def __init__(self, n=4, shape=(4, 3, 4, 4), seed=0):
        g = torch.Generator().manual_seed(seed)
        self.latents = torch.randn(n, *shape, generator=g)
        self.text = torch.randn(n, 6, 384, generator=g)
        self.mask = torch.ones(n, 6, dtype=torch.bool)
        self.null_text = torch.randn(2, 384, generator=g)
        self.latent_channels, self.text_dim = shape[0], 384

    def batch(self, batch_size, seed, step, rank=0):
        rng = np.random.default_rng([seed, step, rank])
        idx = torch.as_tensor(rng.integers(0, len(self.latents), batch_size))
        return self.latents[idx], self.text[idx], self.mask[idx], [""] * batch_size


def fill_zeros(module: torch.nn.Module, std: float) -> torch.nn.Module:
    """Give the zero-initialised weights of an untrained model random values: otherwise its
    output ignores the text and the noise (adaLN-zero, zero output layer)."""
    with torch.no_grad():
        for p in module.parameters():
            if not p.abs().sum():
                p.normal_(0, std)
    return module


def make_tiny_model(out, window: int = 9):
    """A tiny model directory with random weights (the zero-initialised ones too, so that
    samples vary): enough to run every generation mode quickly."""
    from nanosora import modelconfig, modeldir
    from nanosora.config import VAE_PRESETS
    from nanosora.networks.dit import DIT_PRESETS, DiT
    from nanosora.networks.vae import VideoVAE

    torch.manual_seed(0)
    vae, dit = VideoVAE(VAE_PRESETS["tiny"]), fill_zeros(DiT(DIT_PRESETS["tiny"]), 0.02)
    modeldir.save_weights(out / "vae.safetensors", vae)
    modeldir.save_weights(out / "dit.safetensors", dit)
    cfg = modelconfig.build(VAE_PRESETS["tiny"], DIT_PRESETS["tiny"], name="tiny", fps=8, window=window)
    modeldir.write_config(out, cfg)
    return out
