"""Shared test helpers."""

from __future__ import annotations

import numpy as np
import torch


class FakeCache:
    """A latent cache in memory: fixed latents and text embeddings (no encoder needed)."""

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
