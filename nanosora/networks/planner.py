"""The layout planner: from a detailed caption to every object's box over time.

A small network reads the text encoder's output, never the world's parser or physics. The
caption is split into sentences, each encoded alone; a small transformer reads the tokens of
all of them side by side, each marked with its sentence's place (an object's box depends on
the words of its own sentence, "starts at the bottom left", and on the sentences around it:
which shot it is in, what the camera does). Each sentence's tokens are then pooled into its
state, from which the planner says whether it introduces an object and, for any time in
seconds from the caption's start, where that object's box is and whether it is in view.

It learns Flatland's motions from captions and their exact layouts alone (no pixels), in
minutes (train_planner.py); its plan is a function of time, so every window of a long clip
reads the same plan at its own times and continues where the one before ended.

    caption --split--> sentences --MiniLM--> each sentence's tokens
        --+ sentence place, aspect, length--> transformer over all the tokens
        --pooled per sentence--> object or not;  (state, time t) --MLP--> box, in view at t
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nanosora.networks.layout import Layout, latent_boxes


@dataclass(frozen=True)
class PlannerConfig:
    text_dim: int = 384
    hidden: int = 256
    depth: int = 4  # layers of the box MLP
    freqs: int = 10  # Fourier features of time: periods from 0.25 s to 128 s
    layers: int = 2  # transformer layers over the caption's sentences
    heads: int = 4
    max_sentences: int = 48  # a caption's sentences the planner can place

    def validate(self) -> None:
        if min(self.text_dim, self.hidden, self.depth, self.freqs, self.heads, self.max_sentences) < 1:
            raise ValueError(f"invalid planner config: {self}")
        if self.layers < 0 or self.hidden % self.heads:
            raise ValueError(f"invalid planner config (hidden must divide into heads): {self}")


PLANNER_PRESETS: dict[str, PlannerConfig] = {
    "tiny": PlannerConfig(hidden=32, depth=2, freqs=4, layers=1, heads=2),
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
        self.embed = nn.Sequential(nn.Linear(d, h), nn.GELU(), nn.Linear(h, h))
        self.attend = nn.Linear(h, cfg.heads)  # each head's weight of a token in its sentence
        # drawn here, not by nn.Embedding, and not on the meta device, where a normal draw
        # imports torch's compiler (seconds of a cold start) for weights a file replaces
        self.position = nn.Embedding(cfg.max_sentences, h, _weight=torch.empty(cfg.max_sentences, h))
        if not self.position.weight.is_meta:
            nn.init.normal_(self.position.weight)
        self.clip = nn.Linear(2, h)  # log aspect and log length
        layer = nn.TransformerEncoderLayer(
            h, cfg.heads, 4 * h, dropout=0.0, batch_first=True, norm_first=True
        )
        self.context = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(h)
        self.is_object = nn.Linear(h, 1)
        layers: list[nn.Module] = [nn.Linear(h + 2 + 2 * cfg.freqs, h), nn.GELU()]
        for _ in range(cfg.depth - 1):
            layers += [nn.Linear(h, h), nn.GELU()]
        self.track = nn.Sequential(*layers, nn.Linear(h, 5))

    def read(self, tokens, which, sentences: int, aspect, seconds):
        """tokens (B, T, text_dim) of every sentence in turn, which (B, T) the sentence each
        belongs to (-1: padding), aspect and seconds (B,) -> each of the `sentences` sentences'
        state in its caption (B, S, hidden) and object logits (B, S)."""
        if sentences > self.cfg.max_sentences:
            most = self.cfg.max_sentences
            raise ValueError(f"a caption of {sentences} sentences: the planner places up to {most}")
        b, t, _ = tokens.shape
        heads = self.cfg.heads
        real_token = which >= 0  # captions differ in length: only real tokens are embedded
        u = tokens.new_zeros(b, t, self.cfg.hidden, dtype=torch.float32)
        u[real_token] = self.embed(tokens[real_token].float())  # (B, T, h)
        # each sentence pooled from its own tokens by attention (the words that place it, such
        # as "bottom left", can outweigh the words that name it); one weight per head
        member = which[:, None, :] == torch.arange(sentences, device=which.device)[None, :, None]  # (B, S, T)
        logits = self.attend(u).transpose(1, 2)[:, None]  # (B, 1, H, T)
        w = torch.softmax(logits.masked_fill(~member[:, :, None], float("-inf")), -1).nan_to_num(0.0)
        parts = u.view(b, t, heads, -1).permute(0, 2, 1, 3)  # (B, H, T, h/H)
        pooled = torch.einsum("bsht,bhtd->bshd", w, parts).flatten(2)  # (B, S, h)
        pos = torch.arange(sentences, device=tokens.device)
        clip = torch.stack([torch.log(aspect), torch.log1p(seconds)], -1)
        x = pooled + self.position(pos)[None] + self.clip(clip)[:, None]
        real = member.any(-1)
        state = self.norm(self.context(x, src_key_padding_mask=~real))
        return state, self.is_object(state)[..., 0]

    def boxes(self, state, seconds, t):
        """state (N, hidden) of N object sentences, seconds (N,), t (N, M) seconds from the
        caption's start -> boxes (N, M, 4) in frame fractions and in-view logits (N, M)."""
        feats = time_features(t, seconds[:, None].expand_as(t), self.cfg.freqs)
        out = self.track(torch.cat([state[:, None].expand(-1, t.shape[1], -1), feats], -1))
        lo = torch.sigmoid(out[..., :2])  # the box as its top-left corner and its extent
        size = torch.sigmoid(out[..., 2:4]) * (1 - lo)
        return torch.cat([lo, lo + size], -1), out[..., 4]

    def forward(self, tokens, which, aspect, seconds, t, where):
        """Object logits (B, S) of every sentence, and boxes (N, M, 4) and in-view logits
        (N, M) of the N sentences `where` (B, S) marks, at their times t (B, S, M): only the
        sentences that are objects need a track."""
        state, logits = self.read(tokens, which, where.shape[1], aspect, seconds)
        secs = seconds[:, None].expand_as(where)
        boxes, seen = self.boxes(state[where], secs[where], t[where])
        return logits, boxes, seen


@dataclass(eq=False)  # plans are the same only when they are one object
class Plan:
    """One caption's plan: each object's words and its box as a function of time (planned,
    or given by the user as key frames: request.LayoutSpec)."""

    sentences: list[str]  # each object's sentence of the caption
    emb: torch.Tensor  # (K, text_dim)
    boxes_at: Callable[
        [np.ndarray], np.ndarray
    ]  # times (M,) in seconds -> (K, M, 4) boxes, empty out of view
    # (K, L) 0/1: each object's tokens of the caption (text.span_tokens); None: not known
    words: torch.Tensor | None = None

    def layout(self, times: np.ndarray, time_factor: int) -> Layout:
        """The layout of a window whose frames stand at `times` (seconds from the caption's
        start): each latent frame's box the union of its frames' boxes."""
        boxes = self.boxes_at(np.asarray(times, dtype=np.float64))
        lat = latent_boxes(boxes, 1 + (len(times) - 1) // time_factor, time_factor)
        words = None if self.words is None else self.words[None]
        return Layout(self.emb[None].float(), torch.from_numpy(lat)[None], words)

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
    from nanosora.networks.text import sentences

    parts = sentences(caption) or [caption]
    with torch.inference_mode():
        tokens = encoder.word_tokens(parts)
        sent = torch.stack([t.mean(0) for t in tokens])  # encoder.sentence_embeddings(parts)
        which = torch.cat([torch.full((len(t),), i) for i, t in enumerate(tokens)])[None]
        a, s = torch.tensor([float(aspect)]), torch.tensor([float(seconds)])
        state, logits = planner.read(torch.cat(tokens)[None], which, len(parts), a, s)
    keep = [i for i in range(len(parts)) if logits[0, i] > 0]
    emb, words, state = sent[keep], [parts[i] for i in keep], state[0, keep]

    def boxes_at(times: np.ndarray) -> np.ndarray:
        k = len(keep)
        if k == 0:
            return np.zeros((0, len(times), 4), np.float32)
        t = torch.from_numpy(times).float()[None].expand(k, -1)
        with torch.inference_mode():
            boxes, seen = planner.boxes(state, s.expand(k), t)
        boxes = boxes.clone()
        boxes[seen <= 0] = 0.0
        return boxes.numpy()

    from nanosora.networks.text import span_tokens

    tokens_of = span_tokens(encoder.tokenizer, caption, words, encoder.max_tokens) if words else None
    return Plan(words, emb, boxes_at, tokens_of)
