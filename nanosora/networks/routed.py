"""Token routing in training (TREAD, Krause et al. 2025, arXiv 2501.04765), a research seam
no shipped model uses: blocks route[0] to route[1] - 1 of a RoutedDiT see a random
`route_keep` share of the tokens; the others skip those blocks and rejoin after them.
Sampling passes no route, so a routed model samples as a plain DiT.

    tokens ─┬─ blocks < start ─┬─ gather K ─ routed blocks ─ scatter ─┬─ blocks >= end
            │                  └──────────── skipped tokens ──────────┘
"""

from __future__ import annotations

import numpy as np
import torch

from nanosora.networks.dit import DiT, DiTConfig, TextContext, rope_rotation


def route_indices(batch: int, tokens: int, keep: float, rng) -> torch.Tensor:
    """(B, K) sorted indices of the tokens each sample keeps in the routed blocks, K =
    round(keep * tokens), drawn from a NumPy generator (so a training step is reproducible)."""
    k = max(1, round(keep * tokens))
    return torch.from_numpy(np.stack([np.sort(rng.permutation(tokens)[:k]) for _ in range(batch)]))


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:  # x (B, N, D), idx (B, K)
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1]))


class RoutedDiT(DiT):
    """A DiT whose forward also takes route (B, K): the tokens kept in the routed blocks
    (route_indices). Without a route every token goes through every block."""

    def run_blocks(
        self, x_tok, c_vec, text: TextContext, angles, maps: bool = False, self_mask=None, route=None
    ):
        if route is None:
            return super().run_blocks(x_tok, c_vec, text, angles, maps, self_mask)
        if maps or self_mask is not None or text.mask.ndim == 3:
            raise ValueError("routed blocks see a share of the tokens: no attention maps or regions there")
        start, end = self.cfg.route
        rotation = full_rotation = rope_rotation(angles)
        full, block_maps = x_tok, []
        for i, (blk, kv) in enumerate(
            zip(self.blocks, text.kv or [text.ctx] * len(self.blocks), strict=True)
        ):
            if i == start:
                full = x_tok
                x_tok = gather_tokens(x_tok, route)  # (B, K, D)
                rotation = rope_rotation(angles[route][:, None])  # (2, B, 1, K, D/2): per sample
            x_tok, m = blk(x_tok, c_vec, kv, text.mask, rotation)
            block_maps.append(m)
            if i == end - 1:  # the routed tokens rejoin as they left
                x_tok = full.scatter(1, route[..., None].expand(-1, -1, x_tok.shape[-1]), x_tok)
                rotation = full_rotation
        return x_tok, block_maps


def new(cfg: DiTConfig) -> DiT:
    """The transformer a DiTConfig describes: a RoutedDiT when it routes tokens, else a DiT."""
    return RoutedDiT(cfg) if cfg.routes else DiT(cfg)
