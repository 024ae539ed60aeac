"""Grounding losses: training-time supervision of the transformer's attention by Flatland's
exact layouts, so that each object's tokens read its own words and not another object's
region. Generation needs nothing but text (and the layout, for a layout model); these terms
exist in training only.

- **cross** (TokenCompose, Wang et al. 2024, arXiv 2312.03626): each object's words, as the
  video tokens attend to them, should be attended from inside that object's region. Per
  object k, a_k(n) is the cross-attention that token n pays to k's words; the loss is the
  share of a_k that falls outside k's box (1 - sum a_k * cov_k / sum a_k).
- **self** (Attention Refocusing, Phung et al. 2024, arXiv 2306.05427, used there as
  guidance at sampling; here as a training loss): a token inside object k's box should not
  attend to tokens of another object's box; the loss is that attention mass, weighted by how
  much of the token k covers. It is the direct lever against two objects melting into one.

Both are read from every block, averaged over heads, and share the coverage the layout
already gives the transformer (layout.Layout.coverage): the share of each token's cell that
each object's box covers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nanosora.networks.text import sentences, span_tokens


@dataclass(frozen=True)
class Grounding:
    """What the losses compare attention against, for one micro-batch."""

    coverage: torch.Tensor  # (B, K, N): each object's share of each token's cell
    words: torch.Tensor  # (B, K, L) 0/1: which text tokens are each object's words
    # each row's objects count only where its text was kept (a row trained on the empty
    # prompt has no words to bind); folded into `words` and `coverage` by `masked`

    def masked(self, kept: torch.Tensor) -> Grounding:
        k = kept.to(self.coverage.dtype)[:, None, None]
        return Grounding(self.coverage * k, self.words * k.to(self.words.dtype))


def token_objects(tokenizer, captions: list[str], objects: int, length: int, max_tokens: int) -> torch.Tensor:
    """(B, objects, length) 0/1: for each caption, which of its tokens (text.span_tokens)
    belong to each object's sentence (world.layout.object_sentences: the sentences that
    introduce an object, in the order the layout lists them)."""
    from nanosora.world.layout import object_sentences

    out = torch.zeros(len(captions), objects, length)
    for i, caption in enumerate(captions):
        parts = sentences(caption)
        mine = [parts[si] for si in object_sentences(parts)[:objects]]
        if mine:
            out[i, : len(mine)] = span_tokens(tokenizer, caption, mine, max_tokens, length)
    return out


def cross_loss(cross: torch.Tensor, g: Grounding) -> torch.Tensor:
    """cross (B, N, L): head-averaged cross-attention of one block. The mean over present
    objects of the share of attention to their words that falls outside their box."""
    a = torch.einsum("bnl,bkl->bkn", cross.float(), g.words)  # (B, K, N)
    total = a.sum(-1)
    inside = (a * g.coverage.clamp(0, 1)).sum(-1)
    present = (total > 1e-8) & (g.coverage.sum(-1) > 0)
    if not present.any():
        return cross.new_zeros(())
    return (1 - inside[present] / total[present]).mean()


def self_loss(attn: torch.Tensor, g: Grounding) -> torch.Tensor:
    """attn (B, N, N): head-averaged self-attention of one block. Attention from inside each
    object's box to the boxes of the others, averaged over the tokens weighted by coverage."""
    cov = g.coverage.clamp(0, 1)  # (B, K, N)
    k = cov.shape[1]
    # (B, K, N): where another object is and this one is not
    nearest = [torch.cat([cov[:, :j], cov[:, j + 1 :]], 1).amax(1) for j in range(k)] if k > 1 else []
    others = (torch.stack(nearest, 1) if nearest else torch.zeros_like(cov)) * (1 - cov)
    leak = torch.einsum("bnm,bkm->bkn", attn.float(), others)  # (B, K, N)
    has_other = others.sum(-1) > 0  # (B, K)
    w = cov * has_other[..., None]
    if w.sum() <= 0:
        return attn.new_zeros(())
    return (leak * w).sum() / w.sum()


def grounding_losses(
    maps: list[tuple[torch.Tensor, torch.Tensor]], g: Grounding
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross, self) averaged over blocks; maps: DiT.forward(..., maps=True)'s per-block
    (self-attention (B, N, N), cross-attention (B, N, L))."""
    c = torch.stack([cross_loss(x, g) for _, x in maps]).mean()
    s = torch.stack([self_loss(a, g) for a, _ in maps]).mean()
    return c, s


def object_weight(layout, latent_shape: tuple[int, ...], weight: float) -> torch.Tensor:
    """(B, 1, T, h, w): the flow loss's weight on each latent, 1 + weight where an object's
    box covers it (its share of the latent's cell). The objects are a small part of a frame,
    so the plain mean over latents is mostly background; the shape's edges and corners, which
    the scorer reads, get a larger share of the gradient. `layout` is the clip's true layout
    (layout.Layout, one box per latent frame), whether or not the row was given it."""
    _, _, t, h, w = latent_shape
    cov = layout.coverage((t, h, w)).amax(1).clamp(0, 1)  # (B, T*h*w): any object
    return 1 + weight * cov.view(-1, 1, t, h, w)
