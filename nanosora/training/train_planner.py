"""`nanosora train planner`: the layout planner (planner.py), from Flatland captions and
their exact layouts. No pixels: a scene, its detailed caption (paraphrased as in training)
and each object's box at random times are all it needs, so it trains in minutes.

The data set is drawn once from (seed, n) and encoded by the text encoder; every batch is
then a pure function of (seed, step), so a resumed run repeats an unbroken one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nanosora import modeldir
from nanosora.networks.planner import Planner, PlannerConfig
from nanosora.training import train

# clip lengths and aspects the planner learns: every length generation asks for (a long
# clip's caption spans the whole clip, and each window reads the plan at its own times)
SECONDS = (1.0, 2.0, 2.0, 2.0, 3.0, 4.0, 10.0, 30.0, 60.0)
ASPECTS = (1.0, 1.0, 2.0, 0.5)
TIMES = 16  # times drawn per object sentence


@dataclass
class PlannerData:
    """One row per caption: its tokens padded to the longest caption's, its sentences to the
    most sentences a caption has."""

    tokens: torch.Tensor  # (C, T, D) float16: every sentence's tokens, each encoded alone, in turn
    which: torch.Tensor  # (C, T) the sentence of each token (-1: padding)
    mask: torch.Tensor  # (C, S) True for a real sentence
    aspect: torch.Tensor  # (C,)
    seconds: torch.Tensor  # (C,)
    is_object: torch.Tensor  # (C, S) 1 where the sentence introduces an object
    times: torch.Tensor  # (C, S, M) seconds from the caption's start
    boxes: torch.Tensor  # (C, S, M, 4) the object's box then (zeros for other sentences)
    seen: torch.Tensor  # (C, S, M) 1 where it is in view

    def __len__(self) -> int:
        return len(self.tokens)

    def rows(self, idx: torch.Tensor) -> PlannerData:
        """The captions idx, their tokens cut to the longest of them."""
        d = PlannerData(*(getattr(self, f.name)[idx] for f in dataclasses.fields(self)))
        n = int((d.which >= 0).sum(1).max())
        return dataclasses.replace(d, tokens=d.tokens[:, :n], which=d.which[:, :n])


def make_data(n: int, encoder, seed: int = 0, exclude=None, progress: bool = True) -> PlannerData:
    """n Flatland scenes as planner training rows, one row per caption."""
    from tqdm import tqdm

    from nanosora.networks.text import sentences
    from nanosora.world.caption import detailed_caption
    from nanosora.world.layout import object_sentences, scene_boxes
    from nanosora.world.sample import sample_scene

    rng = np.random.default_rng([seed, 5])
    rows: list[tuple] = []
    for _ in tqdm(range(n), desc="planner data", unit="scene", disable=not progress):
        aspect, seconds = float(rng.choice(ASPECTS)), float(rng.choice(SECONDS))
        scene = sample_scene(rng, aspect, seconds, exclude)
        parts = sentences(detailed_caption(scene, seconds, rng))
        objs = object_sentences(parts)
        t = np.sort(rng.uniform(0, seconds, (len(parts), TIMES)), 1)
        t[:, 0] = 0.0
        boxes = np.zeros((len(parts), TIMES, 4), np.float32)
        for k, j in enumerate(objs):
            boxes[j] = scene_boxes(scene, t[j], seconds)[k]
        rows.append((parts, aspect, seconds, objs, t, boxes))
    most = max(len(r[0]) for r in rows)
    texts = [p for r in rows for p in r[0]]
    emb: list[torch.Tensor] = []
    for i in tqdm(range(0, len(texts), 256), desc="planner text", unit="batch", disable=not progress):
        emb += [e.half() for e in encoder.word_tokens(texts[i : i + 256])]
    flat = iter(emb)
    per = [[next(flat) for _ in r[0]] for r in rows]
    longest = max(sum(len(e) for e in p) for p in per)
    tokens = torch.zeros(n, longest, encoder.dim, dtype=torch.float16)
    which = torch.full((n, longest), -1, dtype=torch.long)
    for c, p in enumerate(per):
        tokens[c, : sum(len(e) for e in p)] = torch.cat(p)
        which[c, : sum(len(e) for e in p)] = torch.cat([torch.full((len(e),), i) for i, e in enumerate(p)])
    mask = torch.zeros(n, most, dtype=torch.bool)
    is_object = torch.zeros(n, most)
    times = torch.zeros(n, most, TIMES)
    box = torch.zeros(n, most, TIMES, 4)
    for c, (parts, _, _, objs, t, boxes) in enumerate(rows):
        k = len(parts)
        mask[c, :k] = True
        is_object[c, objs] = 1.0
        times[c, :k] = torch.from_numpy(t).float()
        box[c, :k] = torch.from_numpy(boxes)
    seen = ((box[..., 2] > box[..., 0]) & (box[..., 3] > box[..., 1])).float()
    aspects, secs = (torch.tensor([r[i] for r in rows]) for i in (1, 2))
    return PlannerData(tokens, which, mask, aspects, secs, is_object, times, box, seen)


def _run(planner: Planner, d: PlannerData):
    """Every sentence's object logit, and the object sentences' boxes and in-view logits."""
    return planner(d.tokens, d.which, d.aspect, d.seconds, d.times, d.is_object.bool())


def planner_loss(planner: Planner, d: PlannerData) -> torch.Tensor:
    """Object or not for every sentence; for objects, the box (L1) where it is in view and
    whether it is in view."""
    logit, boxes, seen = _run(planner, d)
    obj, real = d.is_object.bool(), d.mask
    loss = F.binary_cross_entropy_with_logits(logit[real], d.is_object[real])
    if obj.any():
        loss = loss + F.binary_cross_entropy_with_logits(seen, d.seen[obj])
        vis = d.seen[obj][..., None]
        loss = loss + 10 * ((boxes - d.boxes[obj]).abs() * vis).sum() / (vis.sum() * 4).clamp_min(1)
    return loss


def train_planner(
    out: str | Path,
    data: PlannerData,
    cfg: PlannerConfig | None = None,
    tcfg: train.TrainConfig | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> Planner:
    """Train a planner on `data`; out/planner.safetensors holds it at every checkpoint."""
    out = Path(out)
    tcfg = tcfg or train.TrainConfig(steps=4000, batch=64, lr=1e-3, warmup=100, ckpt_every=500)
    torch.manual_seed(tcfg.seed)
    planner = Planner(cfg or PlannerConfig())

    def loss_fn(step: int, micro: int):
        g = torch.Generator().manual_seed(
            int(np.random.default_rng([tcfg.seed, step, micro]).integers(2**62))
        )
        idx = torch.randint(0, len(data), (tcfg.batch,), generator=g)
        return planner_loss(planner, data.rows(idx)), {}, tcfg.batch

    def on_checkpoint(step: int) -> None:
        modeldir.save_weights(out / "planner.safetensors", planner)

    train.run(
        out,
        planner,
        train.adamw(planner.parameters(), tcfg),
        tcfg,
        loss_fn,
        on_checkpoint=on_checkpoint,
        progress=progress,
        stop_after=stop_after,
    )
    return planner


@torch.no_grad()
def accuracy(planner: Planner, d: PlannerData) -> dict:
    """How well a planner reads captions it never saw: object sentences found, and the mean
    box error (frame fractions) and in-view agreement where the object is."""
    logit, boxes, seen = _run(planner, d)
    obj = d.is_object.bool()
    vis = d.seen[obj].bool()
    return {
        "captions": len(d),
        "sentences": int(d.mask.sum()),
        "object_accuracy": float(((logit > 0) == obj)[d.mask].float().mean()),
        "box_l1": float((boxes - d.boxes[obj]).abs().mean(-1)[vis].mean()),
        "in_view_accuracy": float(((seen > 0) == vis).float().mean()),
    }
