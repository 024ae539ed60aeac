"""The latent cache: a data set encoded once into safetensors shards, so that transformer
training never runs the autoencoder or the text encoder.

A shard holds clips of one bucket:
    latents    (N, C, T, h, w) float32, normalised
    text       (N, L, D) float16, zero-padded token embeddings of the detailed captions
    text_mask  (N, L) bool
    null_text  (L0, D) float16, the empty prompt (for classifier-free guidance dropout)
    refs       (N, C, 1, h, w) float32: each clip's reference frame, its scene after a cut
               (reference.py); Flatland clips only
    layout_boxes  (N, K, T, 4) float32: each object's box in each latent frame (world.layout),
               K = world.layout.MAX_OBJECTS, empty boxes past a clip's objects; Flatland only
    layout_emb (N, K, D) float16: each object's caption sentence, embedded alone and mean-pooled
and in its metadata the captions and the bucket as JSON.

Shards are numbered; under torchrun, rank r writes shards r, r + W, r + 2W, ... Each shard
is a pure function of (seed, shard index), and a shard already on disk is skipped, so an
interrupted `nanosora cache` continues where it stopped.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from nanosora.atomic import atomic_path
from nanosora.generation import reference
from nanosora.networks.text import pad_tokens
from nanosora.networks.vae import frames_to_tensor
from nanosora.training import data

# What the transformer trains on: mostly the default 64x64 clip, wide and tall frames,
# and single images (text to image).
DIT_BUCKETS = (
    data.Bucket(64, 64, 17, 4.0),
    data.Bucket(128, 64, 17, 1.0),
    data.Bucket(64, 128, 17, 1.0),
    data.Bucket(64, 64, 1, 0.5),
)
# the longest clip the transformer trains on: one generation window (model.py, timeline.py)
WINDOW = max(b.frames for b in DIT_BUCKETS)


def text_config(source):
    """The model directory's text section for a model trained on `source` (a LatentCache or
    OnTheFly): the encoder and the way it was used, so generation encodes prompts the same way."""
    from nanosora.modelconfig import TextConfig

    return TextConfig(source.text_encoder, sentence_tokens=source.sentence_tokens)


def _rank_world() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def shard_path(folder: Path, i: int) -> Path:
    return Path(folder) / f"shard-{i:05d}.safetensors"


def build(
    out: str | Path,
    vae,
    source,
    n: int,
    shard_size: int = 1000,
    text_encoder: str | None = "minilm",
    seed: int = 0,
    buckets=DIT_BUCKETS,
    progress: bool = True,
    sentence_tokens: bool = False,
) -> list[Path]:
    """Encode n clips into ceil(n / shard_size) shards; returns the shards this rank wrote.
    `sentence_tokens`: captions get a token per sentence too (text.TextEncoder)."""
    from tqdm import tqdm

    from nanosora.networks.text import TextEncoder

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rank, world = _rank_world()
    enc = TextEncoder(text_encoder, sentence_tokens=sentence_tokens)
    null = enc.encode_tokens([""])[0].half()
    mine = [i for i in range(math.ceil(n / shard_size)) if i % world == rank]
    todo = [i for i in mine if not shard_path(out, i).exists()]
    written = []
    bar = tqdm(
        total=sum(min(shard_size, n - i * shard_size) for i in todo),
        disable=not progress or rank > 0,
        unit="clip",
        desc="caching",
    )
    vae.eval()
    for i in todo:
        rng = np.random.default_rng([seed, i])
        bucket = data.pick_bucket(buckets, rng)
        count = min(shard_size, n - i * shard_size)
        latents, captions, refs, boxes = [], [], [], []
        # reference frames from a generator of their own: the clips stay what they were
        ref_rng = np.random.default_rng([seed, i, 1])
        for j in range(0, count, 16):
            samples = data.draw(source, rng, bucket, min(16, count - j))
            ref = reference.render(samples, bucket.width, bucket.height, ref_rng)
            with torch.inference_mode():
                latents.append(vae.encode(data.to_batch(samples)))
                if ref is not None:
                    refs.append(vae.encode(torch.cat([frames_to_tensor(f[None]) for f in ref])))
            captions += [s.caption for s in samples]
            boxes += [_boxes(s, vae.cfg.time_factor) for s in samples]
            bar.update(len(samples))
        text, mask = _pad_half(enc.encode_tokens(captions))
        tensors = {
            "latents": torch.cat(latents).contiguous(),
            "text": text,
            "text_mask": mask,
            "null_text": null,
        }
        if len(refs) == len(latents):  # every clip has one
            tensors["refs"] = torch.cat(refs).contiguous()
        if all(b is not None for b in boxes):
            tensors["layout_boxes"] = torch.from_numpy(np.stack(boxes)).contiguous()
            tensors["layout_emb"] = object_embeddings(enc, captions).half().contiguous()
        meta = {
            "captions": json.dumps(captions),
            "bucket": json.dumps(bucket.__dict__),
            "text_encoder": enc.name,
            "sentence_tokens": json.dumps(sentence_tokens),
        }
        with atomic_path(shard_path(out, i)) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        written.append(shard_path(out, i))
    bar.close()
    return written


def _boxes(sample, time_factor: int) -> np.ndarray | None:
    """(MAX_OBJECTS, latent frames, 4) boxes of a Flatland sample's objects; None for others."""
    from nanosora.world.layout import MAX_OBJECTS, clip_layout

    if sample.scene is None:
        return None
    b = clip_layout(sample.scene, sample.seconds, sample.start, len(sample.frames), sample.fps, time_factor)
    out = np.zeros((MAX_OBJECTS, b.shape[1], 4), np.float32)
    out[: len(b)] = b
    return out


def object_embeddings(enc, captions: list[str]) -> torch.Tensor:
    """(N, MAX_OBJECTS, D): each caption's object sentences (world.layout.object_sentences),
    embedded alone and mean-pooled, in order, zero past its objects."""
    from nanosora.networks.text import sentences
    from nanosora.world.layout import MAX_OBJECTS, object_sentences

    out = torch.zeros(len(captions), MAX_OBJECTS, enc.dim)
    for i, cap in enumerate(captions):
        parts = sentences(cap)
        objs = [parts[j] for j in object_sentences(parts)][:MAX_OBJECTS]
        if objs:
            out[i, : len(objs)] = enc.sentence_embeddings(objs)
    return out


def _pad_half(embs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    from nanosora.networks.text import pad

    text, mask = pad(embs)
    return text.half().contiguous(), mask


@dataclass
class _Group:
    latents: torch.Tensor
    text: torch.Tensor
    mask: torch.Tensor
    captions: list[str]
    refs: torch.Tensor | None = None  # (N, C, 1, h, w), where every shard of the group has them
    boxes: torch.Tensor | None = None  # (N, K, T, 4) and
    emb: torch.Tensor | None = None  # (N, K, D), where every shard of the group has layouts


def _cat(parts, key: str) -> torch.Tensor | None:
    """One tensor of every shard of a group, where all of them hold it."""
    return torch.cat([p[0][key] for p in parts]) if all(key in p[0] for p in parts) else None


class LatentCache:
    """All shards of a cache folder in memory, grouped by latent shape; `batch(seed, step)`
    draws one group (weighted by its size) and a random batch from it."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        files = sorted(folder.glob("shard-*.safetensors")) if folder.is_dir() else []
        if not files:
            raise ValueError(
                f"{folder}: no cache shards (shard-*.safetensors); build them with `nanosora cache`"
            )
        groups: dict[tuple, list] = {}
        self.null_text = None
        self.text_encoder = "minilm"
        self.sentence_tokens = False
        for f in files:
            try:
                with safe_open(str(f), "pt") as st:
                    t = {k: st.get_tensor(k) for k in st.keys()}  # noqa: SIM118 (safe_open has no iterator)
                    meta = st.metadata() or {}
                captions = json.loads(meta.get("captions", "[]"))
            except (SafetensorError, OSError, ValueError) as e:
                raise ValueError(f"{f}: not a readable cache shard ({e})") from None
            if self.null_text is None:
                self.null_text = t["null_text"].float()
                self.text_encoder = meta.get("text_encoder", "minilm")
                self.sentence_tokens = bool(json.loads(meta.get("sentence_tokens", "false")))
            groups.setdefault(tuple(t["latents"].shape[1:]), []).append((t, captions))
        self.groups = []
        for parts in groups.values():
            width = max(p[0]["text"].shape[1] for p in parts)
            self.groups.append(
                _Group(
                    torch.cat([p[0]["latents"] for p in parts]),
                    torch.cat([pad_tokens(p[0]["text"], width) for p in parts]),
                    torch.cat([pad_tokens(p[0]["text_mask"], width) for p in parts]),
                    [c for p in parts for c in p[1]],
                    _cat(parts, "refs"),
                    _cat(parts, "layout_boxes"),
                    _cat(parts, "layout_emb"),
                )
            )
        self.sizes = np.array([len(g.latents) for g in self.groups], dtype=float)
        self.latent_channels = int(self.groups[0].latents.shape[1])
        self.text_dim = int(self.groups[0].text.shape[2])

    def __len__(self) -> int:
        return int(self.sizes.sum())

    def vocabulary(self) -> tuple[str, ...]:
        """Every word of the cached captions: the model trained on them records it."""
        from nanosora.vocabulary import of_captions

        return of_captions(c for g in self.groups for c in g.captions)

    @property
    def has_references(self) -> bool:
        return all(g.refs is not None for g in self.groups)

    def _pick(self, batch_size: int, seed: int, step: int, rank: int) -> tuple[_Group, torch.Tensor]:
        rng = data.batch_rng(seed, step, rank)
        g = self.groups[int(rng.choice(len(self.groups), p=self.sizes / self.sizes.sum()))]
        return g, torch.as_tensor(rng.integers(0, len(g.latents), batch_size))

    @property
    def has_layouts(self) -> bool:
        return all(g.boxes is not None for g in self.groups)

    def layouts(self, batch_size: int, seed: int, step: int, rank: int = 0):
        """The layouts (layout.Layout) of the clips batch() gives for these arguments."""
        from nanosora.networks.layout import Layout

        if not self.has_layouts:
            raise ValueError(
                "this cache has no layouts (built before they were cached, or from a folder of "
                "clips): rebuild it from Flatland with `nanosora cache`"
            )
        g, idx = self._pick(batch_size, seed, step, rank)
        return Layout(g.emb[idx].float(), g.boxes[idx])

    def references(self, batch_size: int, seed: int, step: int, rank: int = 0) -> torch.Tensor:
        """The reference latents (B, C, 1, h, w) of the clips batch() gives for these arguments."""
        if not self.has_references:
            raise ValueError(
                "this cache has no reference frames (built before they were cached, or from a folder "
                "of clips): rebuild it from Flatland with `nanosora cache`, or train without ref_p"
            )
        g, idx = self._pick(batch_size, seed, step, rank)
        return g.refs[idx]

    def batch(self, batch_size: int, seed: int, step: int, rank: int = 0):
        """(latents (B, C, T, h, w), text (B, L, D) float32, mask (B, L), captions)."""
        g, idx = self._pick(batch_size, seed, step, rank)
        mask = g.mask[idx]
        width = max(1, int(mask.sum(1).max()))  # trim padding no row in this batch uses
        return (
            g.latents[idx],
            g.text[idx, :width].float(),
            mask[:, :width],
            [g.captions[i] for i in idx.tolist()],
        )


class OnTheFly:
    """The LatentCache interface without a cache: every batch is drawn from a source, encoded
    by the autoencoder and the text encoder as it is needed. Slower per step (the encoders
    run every time) but needs no disk; for small runs and for data that changes."""

    # layouts and reference frames are made when a cache is built (`nanosora cache`)
    has_layouts = False
    has_references = False

    def __init__(
        self,
        vae,
        source,
        buckets=DIT_BUCKETS,
        text_encoder: str | None = "minilm",
        sentence_tokens: bool = False,
    ):
        from nanosora.networks.text import TextEncoder

        self.vae, self.source, self.buckets = vae.eval(), source, buckets
        self.enc = TextEncoder(text_encoder, sentence_tokens=sentence_tokens)
        self.sentence_tokens = sentence_tokens
        self.text_encoder = self.enc.name
        self.null_text = self.enc.encode_tokens([""])[0]
        self.latent_channels = vae.cfg.latent_channels
        self.text_dim = self.enc.dim

    def batch(self, batch_size: int, seed: int, step: int, rank: int = 0):
        from nanosora.networks.text import pad

        bucket, samples = data.batch(self.source, self.buckets, batch_size, seed, step, rank)
        with torch.inference_mode():
            latents = self.vae.encode(data.to_batch(samples))
        captions = [s.caption for s in samples]
        text, mask = pad(self.enc.encode_tokens(captions))
        return latents.clone(), text, mask, captions
