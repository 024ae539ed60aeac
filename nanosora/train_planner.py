"""`nanosora train planner`: the layout planner (planner.py), from Flatland captions and
their exact layouts. No pixels: a scene, its detailed caption (paraphrased as in training)
and each object's box at random times are all it needs, so it trains in minutes.

The data set is drawn once from (seed, n) and encoded by the text encoder; every batch is
then a pure function of (seed, step), so a resumed run repeats an unbroken one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nanosora import modeldir, train
from nanosora.planner import Planner, PlannerConfig

# clip lengths and aspects the planner learns: every length generation asks for (a long
# clip's caption spans the whole clip, and each window reads the plan at its own times)
SECONDS = (1.0, 2.0, 2.0, 2.0, 3.0, 4.0, 10.0, 30.0, 60.0)
ASPECTS = (1.0, 1.0, 2.0, 0.5)
TIMES = 16  # times drawn per object sentence


@dataclass
class PlannerData:
    sentence: torch.Tensor  # (S, D) every sentence of every caption, embedded alone
    caption: torch.Tensor  # (S, D) its caption, mean-pooled
    aspect: torch.Tensor  # (S,)
    seconds: torch.Tensor  # (S,)
    is_object: torch.Tensor  # (S,) 1 where the sentence introduces an object
    times: torch.Tensor  # (S, M) seconds from the caption's start
    boxes: torch.Tensor  # (S, M, 4) the object's box then (zeros for other sentences)
    seen: torch.Tensor  # (S, M) 1 where it is in view

    def __len__(self) -> int:
        return len(self.sentence)


def make_data(n: int, encoder, seed: int = 0, exclude=None, progress: bool = True) -> PlannerData:
    """n Flatland scenes as planner training rows, one row per caption sentence."""
    from tqdm import tqdm

    from nanosora.text import sentences
    from nanosora.world.caption import detailed_caption
    from nanosora.world.layout import object_sentences, scene_boxes
    from nanosora.world.sample import sample_scene

    rng = np.random.default_rng([seed, 5])
    rows: dict[str, list] = {k: [] for k in ("sent", "cap", "aspect", "seconds", "obj", "t", "box", "seen")}
    for _ in tqdm(range(n), desc="planner data", unit="scene", disable=not progress):
        aspect, seconds = float(rng.choice(ASPECTS)), float(rng.choice(SECONDS))
        scene = sample_scene(rng, aspect, seconds, exclude)
        caption = detailed_caption(scene, seconds, rng)
        parts = sentences(caption)
        objs = object_sentences(parts)
        t = np.sort(rng.uniform(0, seconds, (len(parts), TIMES)), 1)
        t[:, 0] = 0.0
        boxes = np.zeros((len(parts), TIMES, 4), np.float32)
        for k, j in enumerate(objs):
            boxes[j] = scene_boxes(scene, t[j], seconds)[k]
        seen = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
        rows["sent"] += parts
        rows["cap"] += [caption] * len(parts)
        rows["aspect"] += [aspect] * len(parts)
        rows["seconds"] += [seconds] * len(parts)
        rows["obj"] += [j in objs for j in range(len(parts))]
        rows["t"].append(t)
        rows["box"].append(boxes)
        rows["seen"].append(seen)
    caps = list(dict.fromkeys(rows["cap"]))
    texts = len(caps) + len(rows["sent"])
    bar = tqdm(total=texts, desc="planner text", unit="text", disable=not progress)
    pooled = {}
    for i in range(0, len(caps), 256):
        for c, e in zip(caps[i : i + 256], encoder.encode_tokens(caps[i : i + 256]), strict=True):
            pooled[c] = e.mean(0)
        bar.update(len(caps[i : i + 256]))
    parts = []
    for i in range(0, len(rows["sent"]), 256):
        parts.append(encoder.sentence_embeddings(rows["sent"][i : i + 256]))
        bar.update(len(parts[-1]))
    bar.close()
    sent = torch.cat(parts)
    return PlannerData(
        sent,
        torch.stack([pooled[c] for c in rows["cap"]]),
        torch.tensor(rows["aspect"]),
        torch.tensor(rows["seconds"]),
        torch.tensor(rows["obj"], dtype=torch.float32),
        torch.from_numpy(np.concatenate(rows["t"])).float(),
        torch.from_numpy(np.concatenate(rows["box"])),
        torch.from_numpy(np.concatenate(rows["seen"])).float(),
    )


def planner_loss(planner: Planner, d: PlannerData, idx: torch.Tensor) -> torch.Tensor:
    """Object or not for every sentence; for objects, the box (L1) where it is in view and
    whether it is in view."""
    logit, boxes, seen = planner(d.sentence[idx], d.caption[idx], d.aspect[idx], d.times[idx], d.seconds[idx])
    obj = d.is_object[idx]
    loss = F.binary_cross_entropy_with_logits(logit, obj)
    w = obj[:, None]
    loss = loss + (F.binary_cross_entropy_with_logits(seen, d.seen[idx], reduction="none") * w).sum() / (
        w.sum() * seen.shape[1]
    ).clamp_min(1)
    vis = (d.seen[idx] * w)[..., None]
    return loss + 10 * ((boxes - d.boxes[idx]).abs() * vis).sum() / (vis.sum() * 4).clamp_min(1)


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
    tcfg = tcfg or train.TrainConfig(steps=4000, batch=256, lr=1e-3, warmup=100, ckpt_every=500)
    torch.manual_seed(tcfg.seed)
    planner = Planner(cfg or PlannerConfig())

    def loss_fn(step: int, micro: int):
        g = torch.Generator().manual_seed(
            int(np.random.default_rng([tcfg.seed, step, micro]).integers(2**62))
        )
        idx = torch.randint(0, len(data), (tcfg.batch,), generator=g)
        return planner_loss(planner, data, idx), {}, tcfg.batch

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
    logit, boxes, seen = planner(d.sentence, d.caption, d.aspect, d.times, d.seconds)
    obj = d.is_object.bool()
    vis = d.seen.bool() & obj[:, None]
    return {
        "sentences": len(d),
        "object_accuracy": float(((logit > 0) == obj).float().mean()),
        "box_l1": float((boxes - d.boxes).abs().mean(-1)[vis].mean()),
        "in_view_accuracy": float(((seen > 0) == d.seen.bool())[obj].float().mean()),
    }
