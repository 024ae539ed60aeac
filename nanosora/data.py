"""Training data: endless Flatland clips, or a folder of the user's own videos, in buckets.

A batch holds clips of one bucket (width, height, frames) so that it stacks into one tensor.
Each batch is a pure function of (seed, step): a resumed run draws exactly the batches an
unbroken run would, with no data-loader state to save.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nanosora import video
from nanosora.vae import frames_to_tensor


@dataclass(frozen=True)
class Bucket:
    width: int
    height: int
    frames: int  # 1 + 4k
    weight: float = 1.0


# Half the steps are single frames: a step of images costs about a seventh of a step of
# 9-frame clips and teaches the same spatial detail (shapes, colours, edges), which is what
# the autoencoder is slowest to learn. Wide and tall clips often enough to learn every aspect.
VAE_BUCKETS = (
    Bucket(64, 64, 9, 2.0),
    Bucket(64, 32, 9, 0.5),
    Bucket(32, 64, 9, 0.5),
    Bucket(64, 64, 1, 2.0),
    Bucket(64, 32, 1, 0.5),
    Bucket(32, 64, 1, 0.5),
)


@dataclass
class Sample:
    frames: np.ndarray  # uint8 (T, H, W, 3)
    caption: str
    fps: float


def batch_rng(seed: int, step: int, rank: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, step, rank])


def pick_bucket(buckets, rng: np.random.Generator) -> Bucket:
    w = np.array([b.weight for b in buckets], dtype=float)
    return buckets[int(rng.choice(len(buckets), p=w / w.sum()))]


def to_batch(samples: list[Sample]) -> torch.Tensor:
    """Stack samples of one bucket into (B, 3, T, H, W) in [-1, 1]."""
    return torch.cat([frames_to_tensor(s.frames) for s in samples])


class FlatlandSource:
    """Procedural, endless: every call draws a fresh scene. `exclude` holds out
    colour-shape-motion combinations (the benchmark's held-out compositions)."""

    def __init__(self, exclude=None, fps_choices=(4, 8, 8, 12), window: bool = True, objects_p=None):
        from nanosora.world.sample import OBJECTS_P

        self.exclude = exclude
        self.objects_p = tuple(objects_p or OBJECTS_P)  # how often 1, 2 and 3 objects
        self.fps_choices = fps_choices
        # window=False: the clip is the scene from its start, so the caption describes
        # exactly what is seen (what the transformer needs); window=True cuts a random
        # window from a longer clip (more variety for the autoencoder, which ignores text)
        self.window = window

    def sample(self, rng: np.random.Generator, bucket: Bucket) -> Sample:
        from nanosora.world.caption import detailed_caption
        from nanosora.world.render import render
        from nanosora.world.sample import sample_scene

        fps = int(rng.choice(self.fps_choices))
        # Render longer than needed and take a window, so that late moments (trails built
        # up, objects leaving, later shots) are seen too, not only the first second.
        seconds = float(rng.choice([1.0, 2.0, 3.0])) if self.window else 0.0
        seconds = max(seconds, (bucket.frames - 1) / fps, 1.0 / fps)
        scene = sample_scene(
            rng, bucket.width / bucket.height, seconds, self.exclude, objects_p=self.objects_p
        )
        frames = render(scene, bucket.width, bucket.height, fps, seconds)
        start = int(rng.integers(0, len(frames) - bucket.frames + 1)) if self.window else 0
        caption = detailed_caption(scene, seconds, rng)
        return Sample(frames[start : start + bucket.frames], caption, fps)


class FolderSource:
    """A folder of mp4 files, with an optional captions.jsonl of {"file", "caption"} rows.
    Clips are cropped to the bucket's aspect ratio, resized, and cut to its frame count."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ValueError(f"{self.folder}: not a folder (give a folder of .mp4 files)")
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in video.VIDEO_EXTS)
        if not self.files:
            raise ValueError(f"{self.folder}: no .mp4 files found (the folder must hold .mp4 videos)")
        self.captions = _read_captions(self.folder / "captions.jsonl")
        self._cache: dict[Path, video.Video] = {}

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, path: Path) -> video.Video:
        if path not in self._cache:
            if len(self._cache) > 64:  # bound memory on big folders
                self._cache.clear()
            self._cache[path] = video.read(path)
        return self._cache[path]

    def sample(self, rng: np.random.Generator, bucket: Bucket, index: int | None = None) -> Sample:
        path = self.files[int(rng.integers(len(self.files))) if index is None else index]
        clip = self._read(path)
        frames = clip.frames
        n = bucket.frames
        if len(frames) < n:  # a short clip: hold its last frame
            frames = np.concatenate([frames, np.repeat(frames[-1:], n - len(frames), 0)])
        start = int(rng.integers(0, len(frames) - n + 1))
        frames = fit(frames[start : start + n], bucket.width, bucket.height)
        return Sample(frames, self.captions.get(path.name, ""), clip.fps)


def _read_captions(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    out = {}
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out[str(row["file"])] = str(row["caption"])
        except (ValueError, KeyError, TypeError):
            raise ValueError(
                f"{path}:{i}: each line must be a JSON object with 'file' and 'caption'"
            ) from None
    return out


def fit(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop uint8 frames (T, H, W, 3) to the aspect of width x height and resize."""
    t, h, w, _ = frames.shape
    if (h, w) == (height, width):
        return frames
    target = width / height
    if w / h > target:
        cw = int(round(h * target))
        frames = frames[:, :, (w - cw) // 2 : (w - cw) // 2 + cw]
    else:
        ch = int(round(w / target))
        frames = frames[:, (h - ch) // 2 : (h - ch) // 2 + ch]
    x = torch.as_tensor(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def make_source(data: str | None, exclude=None, for_text: bool = False, objects_p=None):
    """'flatland' (or None) for the built-in world, else a folder of videos. for_text: clips
    at the model's frame rate whose captions describe exactly what is seen. objects_p: how
    often a Flatland scene holds 1, 2 and 3 objects (None: sample.OBJECTS_P)."""
    if data in (None, "flatland"):
        if for_text:
            return FlatlandSource(exclude, fps_choices=(8,), window=False, objects_p=objects_p)
        return FlatlandSource(exclude, objects_p=objects_p)
    return FolderSource(data)


def batch(source, buckets, batch_size: int, seed: int, step: int, rank: int = 0):
    """The batch for one step: (bucket, samples), a pure function of its arguments."""
    rng = batch_rng(seed, step, rank)
    b = pick_bucket(buckets, rng)
    return b, [source.sample(rng, b) for _ in range(batch_size)]
