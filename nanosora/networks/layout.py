"""Per-object layouts: each object's sentence embedding and its box in every latent frame.

A layout is the explicit object-to-region assignment that lets a small transformer bind
each object to its own words (GLIGEN, arXiv 2301.07093; MIGC, 2402.05408): the transformer
adds each object's projected sentence embedding to the tokens its box covers, weighted by
how much of each token's cell the box covers. Two objects then start as two local problems
of one object each, which the transformer already solves.

A layout may also say which text tokens are each object's words (`words`). A transformer
with regions (dit.DiTConfig.regions) then bounds its cross-attention by it: a token inside
an object's box reads that object's words and the caption's shared words, never another
object's (regional attention, as in MIGC and Bounded Attention, arXiv 2403.16990), so a
square's word cannot round the circle beside it.

Boxes are (x0, y0, x1, y1) in fractions of the frame; an empty box (x1 <= x0) is an object
out of view in that frame. Layouts come from the learned planner (planner.py), from the
user (a request's `layout`), or, in training only, from Flatland (world.layout).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Layout:
    emb: torch.Tensor  # (B, K, text_dim): each object's sentence, embedded alone and mean-pooled
    boxes: torch.Tensor  # (B, K, T, 4): its box in each latent frame, frame fractions
    # (B, K, L) 0/1: which of the caption's text tokens are each object's words; None: unknown
    words: torch.Tensor | None = None

    def __post_init__(self):
        if self.emb.ndim != 3 or self.boxes.ndim != 4 or self.boxes.shape[-1] != 4:
            raise ValueError(
                f"a layout is emb (B, K, D) and boxes (B, K, T, 4); got {tuple(self.emb.shape)} and "
                f"{tuple(self.boxes.shape)}"
            )
        if self.emb.shape[:2] != self.boxes.shape[:2]:
            raise ValueError(
                f"layout emb {tuple(self.emb.shape)} and boxes {tuple(self.boxes.shape)} differ in "
                "batch or objects"
            )
        if self.words is not None and (self.words.ndim != 3 or self.words.shape[:2] != self.emb.shape[:2]):
            raise ValueError(
                f"layout words {tuple(self.words.shape)} must be (B, K, L) for emb {tuple(self.emb.shape)}"
            )

    @property
    def frames(self) -> int:
        return self.boxes.shape[2]

    def _each(self, f) -> Layout:
        """The layout with f applied to each of its tensors (words too, when known)."""
        return Layout(f(self.emb), f(self.boxes), None if self.words is None else f(self.words))

    def rows(self, idx) -> Layout:
        return self._each(lambda x: x[idx])

    def repeat(self, k: int) -> Layout:
        return self._each(lambda x: x.repeat(k, *[1] * (x.ndim - 1)))

    def to(self, device) -> Layout:
        return self._each(lambda x: x.to(device))

    def with_words(self, words: torch.Tensor | None) -> Layout:
        return Layout(self.emb, self.boxes, words)

    def prepend_empty(self, r: int) -> Layout:
        """r empty frames before the layout's (reference frames hold no one in particular)."""
        b, k = self.boxes.shape[:2]
        return Layout(self.emb, torch.cat([self.boxes.new_zeros(b, k, r, 4), self.boxes], 2), self.words)

    def dropped(self, drop: torch.Tensor) -> Layout:
        """The layout with the rows where `drop` (B,) is True emptied (layout dropout)."""
        keep = (~drop.to(self.boxes.device)).to(self.boxes.dtype)[:, None, None, None]
        return Layout(self.emb, self.boxes * keep, self.words)

    def coverage(self, grid: tuple[int, int, int], time_patch: int = 1) -> torch.Tensor:
        """(B, K, N): the share of each token's cell that each object's box covers, for a token
        grid (t, h, w) whose tokens span `time_patch` latent frames each (averaged over them);
        tokens in row-major (t, h, w) order, as DiT's patchify."""
        gt, gh, gw = grid
        if self.frames != gt * time_patch:
            raise ValueError(
                f"the layout has {self.frames} latent frames; the latents have {gt * time_patch}"
            )
        b = self.boxes.float()
        x0, y0, x1, y1 = (b[..., i].clamp(0, 1)[..., None] for i in range(4))  # (B, K, T, 1)

        def overlap(lo, hi, n):  # share of each of n cells in [0, 1] covered by [lo, hi]
            edges = torch.linspace(0, 1, n + 1, device=b.device)
            return ((torch.minimum(hi, edges[1:]) - torch.maximum(lo, edges[:-1])).clamp_min(0)) * n

        cov = overlap(y0, y1, gh)[..., :, None] * overlap(x0, x1, gw)[..., None, :]  # (B, K, T, gh, gw)
        cov = cov.unflatten(2, (gt, time_patch)).mean(3)  # (B, K, gt, gh, gw)
        return cov.flatten(2)


def region_mask(cov: torch.Tensor, words: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
    """(B, N, L) bool: which text tokens each video token may attend to. cov (B, K, N) each
    object's coverage of each token, words (B, K, L) each object's text tokens, text_mask
    (B, L). A token inside an object's box reads that object's words and every word that is
    no object's (the caption's shared sentences, [CLS], [SEP]); a token no object with words
    covers reads the whole caption. Two boxes that overlap on a token both reach it."""
    length = text_mask.shape[1]
    w = torch.nn.functional.pad(words, (0, max(0, length - words.shape[-1])))[..., :length].bool()
    inside = (cov > 0) & w.any(-1, keepdim=True)  # (B, K, N): covered by an object that has words
    own = torch.einsum("bkn,bkl->bnl", inside.float(), w.float()) > 0
    shared = ~w.any(1)  # (B, L)
    free = ~inside.any(1)  # (B, N)
    return text_mask[:, None, :].bool() & (shared[:, None, :] | own | free[:, :, None])


def self_region_mask(cov: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """(B, N, N) bool: which video tokens each video token's self-attention may read. cov
    (B, K, N) each object's coverage of each token, words (B, K, L) each object's text tokens
    (an object without words bounds nothing). A token inside some objects' boxes reads the
    tokens that share one of those objects and the tokens no object covers; a token no object
    covers reads every token. Across frames alike, so an object still sees itself move."""
    inside = ((cov > 0) & words.bool().any(-1, keepdim=True)).float()  # (B, K, N)
    share = torch.einsum("bkn,bkm->bnm", inside, inside) > 0
    free = inside.sum(1) == 0  # (B, N)
    return share | free[:, :, None] | free[:, None, :]


def latent_boxes(boxes: np.ndarray, latent_frames: int, time_factor: int) -> np.ndarray:
    """Per-pixel-frame boxes (K, T, 4) -> per latent frame (K, T', 4): the union of the boxes
    of the frames each latent frame encodes (frame 0 alone, then groups of `time_factor`)."""
    groups = [[0]] + [
        list(range(1 + (j - 1) * time_factor, 1 + j * time_factor)) for j in range(1, latent_frames)
    ]
    out = np.zeros((boxes.shape[0], latent_frames, 4), np.float32)
    for j, g in enumerate(groups):
        g = [i for i in g if i < boxes.shape[1]]
        b = boxes[:, g]
        full = (b[..., 2] > b[..., 0]) & (b[..., 3] > b[..., 1])  # (K, len(g))
        lo = np.where(full[..., None], b[..., :2], np.inf).min(1)
        hi = np.where(full[..., None], b[..., 2:], -np.inf).max(1)
        seen = full.any(1)
        out[seen, j, :2], out[seen, j, 2:] = lo[seen], hi[seen]
    return out
