"""The layout planner: from a detailed caption to every object's box over time.

A small network reads the text encoder's output, never the world's parser or physics: for
each sentence of the caption (embedded alone) beside the whole caption (its word tokens
mean-pooled), it says whether the sentence introduces an object, and for any time in
seconds from the caption's start, where that object's box is and whether it is in view.
It learns Flatland's motions from captions and their exact layouts alone (no pixels), in
minutes (train_planner.py); its plan is a function of time, so every window of a long
clip reads the same plan at its own times and continues where the one before ended.

    caption --split--> sentences --MiniLM--> sentence embeddings ─┐
    caption --MiniLM, mean-pooled--> caption embedding ───────────┼─> planner(t) -> boxes
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nanosora.layout import Layout, latent_boxes


@dataclass(frozen=True)
class PlannerConfig:
    text_dim: int = 384
    hidden: int = 256
    depth: int = 4
    freqs: int = 10  # Fourier features of time: periods from 0.25 s to 128 s

    def validate(self) -> None:
        if min(self.text_dim, self.hidden, self.depth, self.freqs) < 1:
            raise ValueError(f"invalid planner config: {self}")


PLANNER_PRESETS: dict[str, PlannerConfig] = {
    "tiny": PlannerConfig(hidden=32, depth=2, freqs=4),
    "default": PlannerConfig(),
}


def time_features(t: torch.Tensor, seconds: torch.Tensor, freqs: int) -> torch.Tensor:
    """(..., 2 + 2 * freqs): time in seconds and the clip's length, as a network reads them."""
    periods = 0.25 * 2.0 ** torch.arange(freqs, dtype=torch.float32, device=t.device)
    ang = 2 * math.pi * t[..., None] / periods
    secs = torch.log1p(seconds)[..., None].expand_as(t[..., None])
    return torch.cat([t[..., None] / 60.0, secs, ang.sin(), ang.cos()], -1)


class Planner(nn.Module):
    def __init__(self, cfg: PlannerConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        d, h = cfg.text_dim, cfg.hidden
        self.context = nn.Sequential(nn.Linear(2 * d + 1, h), nn.GELU(), nn.Linear(h, h))
        self.is_object = nn.Linear(h, 1)
        layers: list[nn.Module] = [nn.Linear(h + 2 + 2 * cfg.freqs, h), nn.GELU()]
        for _ in range(cfg.depth - 1):
            layers += [nn.Linear(h, h), nn.GELU()]
        self.track = nn.Sequential(*layers, nn.Linear(h, 5))

    def forward(self, sentence, caption, aspect, t, seconds):
        """sentence, caption (N, text_dim); aspect, seconds (N,); t (N, M) seconds from the
        caption's start -> object logits (N,), boxes (N, M, 4) in frame fractions, in-view
        logits (N, M)."""
        ctx = self.context(torch.cat([sentence, caption, torch.log(aspect)[:, None]], -1))  # (N, h)
        feats = time_features(t, seconds[:, None].expand_as(t), self.cfg.freqs)  # (N, M, F)
        out = self.track(torch.cat([ctx[:, None].expand(-1, t.shape[1], -1), feats], -1))  # (N, M, 5)
        lo = torch.sigmoid(out[..., :2])  # the box as its top-left corner and its extent
        size = torch.sigmoid(out[..., 2:4]) * (1 - lo)
        return self.is_object(ctx)[:, 0], torch.cat([lo, lo + size], -1), out[..., 4]


@dataclass(eq=False)  # plans are the same only when they are one object
class Plan:
    """One caption's plan: each object's words and its box as a function of time (planned,
    or given by the user as key frames: request.LayoutSpec)."""

    sentences: list[str]  # each object's sentence of the caption
    emb: torch.Tensor  # (K, text_dim)
    boxes_at: Callable[
        [np.ndarray], np.ndarray
    ]  # times (M,) in seconds -> (K, M, 4) boxes, empty out of view

    def layout(self, times: np.ndarray, time_factor: int) -> Layout:
        """The layout of a window whose frames stand at `times` (seconds from the caption's
        start): each latent frame's box the union of its frames' boxes."""
        boxes = self.boxes_at(np.asarray(times, dtype=np.float64))
        lat = latent_boxes(boxes, 1 + (len(times) - 1) // time_factor, time_factor)
        return Layout(self.emb[None].float(), torch.from_numpy(lat)[None])

    def to_json(self, times: np.ndarray) -> list[dict]:
        """The plan as data, per object: its words and its box at each of `times`."""
        boxes = self.boxes_at(np.asarray(times, dtype=np.float64))
        return [
            {
                "words": s,
                "keyframes": [
                    {"t": round(float(t), 4), "box": [round(float(v), 4) for v in b]}
                    for t, b in zip(times, boxes[k], strict=True)
                    if b[2] > b[0] and b[3] > b[1]
                ],
            }
            for k, s in enumerate(self.sentences)
        ]


def plan(planner: Planner, encoder, caption: str, aspect: float, seconds: float) -> Plan:
    """The planner's plan for a caption: its object sentences and their boxes over time."""
    from nanosora.text import sentences

    parts = sentences(caption) or [caption]
    with torch.inference_mode():
        sent = encoder.sentence_embeddings(parts)
        cap = encoder.encode_tokens([caption])[0].mean(0, keepdim=True).expand(len(parts), -1)
        n = len(parts)
        a = torch.full((n,), float(aspect))
        s = torch.full((n,), float(seconds))
        logits, _, _ = planner(sent, cap, a, torch.zeros(n, 1), s)
    keep = [i for i in range(n) if logits[i] > 0]
    emb, words = sent[keep], [parts[i] for i in keep]

    def boxes_at(times: np.ndarray) -> np.ndarray:
        k = len(keep)
        if k == 0:
            return np.zeros((0, len(times), 4), np.float32)
        t = torch.from_numpy(times).float()[None].expand(k, -1)
        with torch.inference_mode():
            _, boxes, seen = planner(emb, cap[:k], a[:k], t, s[:k])
        boxes = boxes.clone()
        boxes[seen <= 0] = 0.0
        return boxes.numpy()

    return Plan(words, emb, boxes_at)
