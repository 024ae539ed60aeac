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
from nanosora.networks.vae import frames_to_tensor


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
    scene: object | None = None  # the Flatland scene it shows (world.scene.Scene), if one does
    start: int = 0  # the clip's first frame in the scene's rendering
    seconds: float = 0.0  # how long the scene was rendered and captioned for


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

    def __init__(
        self,
        exclude=None,
        fps_choices=(4, 8, 8, 12),
        window: bool = True,
        objects_p=None,
        pairs_p: float = 0.0,
    ):
        from nanosora.world.sample import OBJECTS_P

        self.exclude = exclude
        # how often a scene of 2-3 objects is followed by its minimal pair, the same scene with
        # the colours exchanged between its objects (world.sample.colour_swapped)
        self.pairs_p = pairs_p
        self.objects_p = tuple(objects_p or OBJECTS_P)  # how often 1, 2 and 3 objects
        self.fps_choices = fps_choices
        # window=False: the clip is the scene from its start, so the caption describes
        # exactly what is seen (what the transformer needs); window=True cuts a random
        # window from a longer clip (more variety for the autoencoder, which ignores text)
        self.window = window

    def sample(self, rng: np.random.Generator, bucket: Bucket) -> Sample:
        return self._draw(rng, bucket, pair=False)[0]

    def sample_many(self, rng: np.random.Generator, bucket: Bucket, n: int) -> list[Sample]:
        """n samples of one bucket, minimal pairs side by side (when pairs_p is set)."""
        out: list[Sample] = []
        while len(out) < n:
            out += self._draw(rng, bucket, pair=len(out) + 1 < n)
        return out

    def _draw(self, rng: np.random.Generator, bucket: Bucket, pair: bool) -> list[Sample]:
        from nanosora.world.caption import detailed_caption
        from nanosora.world.render import render
        from nanosora.world.sample import colour_swapped, sample_scene

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
        clip = frames[start : start + bucket.frames]
        out = [Sample(clip, detailed_caption(scene, seconds, rng), fps, scene, start, seconds)]
        # the rng is drawn from only when pairs are asked for, so that without them every
        # scene (and the default recipe's cache) stays what it was
        if pair and self.pairs_p and len(scene.objects) > 1 and rng.random() < self.pairs_p:
            other = colour_swapped(scene, rng, self.exclude)
            if other is not None:
                clip = render(other, bucket.width, bucket.height, fps, seconds)[start : start + bucket.frames]
                out.append(Sample(clip, detailed_caption(other, seconds, rng), fps, other, start, seconds))
        return out


# clips PyAV reads, and stills (a photo trains as a clip that does not move)
CLIP_EXTS = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".gif")
STILL_EXTS = (".png", ".jpg", ".jpeg", ".webp")
# caption columns of a metadata file, in the order they are looked for (Hugging Face's
# videofolder and imagefolder call it "text"; training tools also write "caption", "prompt")
CAPTION_COLUMNS = ("caption", "text", "prompt")


class FolderSource:
    """A folder of clips (and stills) with their captions, in any of the formats people
    already have (later ones win where they overlap):

    - metadata.csv or metadata.jsonl with `file_name` and a caption column (`caption`,
      `text` or `prompt`): the Hugging Face videofolder convention;
    - captions.jsonl of {"file", "caption"} rows (nanosora's own, as `world sample` writes);
    - a sidecar text file per clip (`a.mp4` with `a.txt`).

    Clips are cropped to the bucket's aspect ratio, resized, and cut to its frame count. A
    file that cannot be read is skipped with a warning naming it, and the next file serves.
    Where some clips have captions, those without one are skipped, named in a warning; a
    folder with no captions at all (for the autoencoder, which reads no text) keeps them all."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ValueError(f"{self.folder}: not a folder (give a folder of video clips)")
        exts = CLIP_EXTS + STILL_EXTS
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in exts)
        if not self.files:
            raise ValueError(
                f"{self.folder}: no clips found (the folder must hold videos: {', '.join(CLIP_EXTS)}; "
                f"or stills: {', '.join(STILL_EXTS)})"
            )
        self.captions = read_captions(self.folder, self.files)
        missing = [p.name for p in self.files if p.name not in self.captions]
        if self.captions and missing:
            # a folder that captions some clips means every clip to have one: a clip left out
            # would teach the model that its pictures go with an empty prompt
            import warnings

            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            warnings.warn(
                f"{self.folder}: skipping {len(missing)} clip(s) with no caption: {shown}", stacklevel=2
            )
            self.files = [p for p in self.files if p.name in self.captions]
            if not self.files:
                raise ValueError(
                    f"{self.folder}: no clip has a caption (captions name files it does not hold)"
                )
        self._cache: dict[Path, video.Video] = {}
        self._bad: set[Path] = set()

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, path: Path) -> video.Video | None:
        if path in self._bad:
            return None
        if path not in self._cache:
            if len(self._cache) > 64:  # bound memory on big folders
                self._cache.clear()
            try:
                self._cache[path] = video.read(path)
            except video.VideoError as e:
                import warnings

                warnings.warn(f"skipping {path}: {e}", stacklevel=2)
                self._bad.add(path)
                return None
        return self._cache[path]

    def sample(self, rng: np.random.Generator, bucket: Bucket, index: int | None = None) -> Sample:
        i = int(rng.integers(len(self.files))) if index is None else index
        # a broken file gives way to the next one: the same choice however often it is met,
        # so a resumed run still draws what an unbroken one would
        for k in range(len(self.files)):
            path = self.files[(i + k) % len(self.files)]
            clip = self._read(path)
            if clip is not None:
                break
        else:
            raise ValueError(f"{self.folder}: none of its {len(self.files)} files can be read")
        frames = clip.frames
        n = bucket.frames
        if len(frames) < n:  # a short clip or a still: hold its last frame
            frames = np.concatenate([frames, np.repeat(frames[-1:], n - len(frames), 0)])
        start = int(rng.integers(0, len(frames) - n + 1))
        frames = fit(frames[start : start + n], bucket.width, bucket.height)
        fps = clip.fps if path.suffix.lower() in CLIP_EXTS else 8.0
        return Sample(frames, self.captions.get(path.name, ""), fps)


def _caption_of(row: dict, where: str) -> str:
    for col in CAPTION_COLUMNS:
        if col in row and row[col] is not None:
            return str(row[col])
    raise ValueError(f"{where}: no caption column (one of {', '.join(CAPTION_COLUMNS)})")


def read_captions(folder: Path, files: list[Path]) -> dict[str, str]:
    """Captions by file name, from every format the folder holds (FolderSource)."""
    import csv

    out: dict[str, str] = {}
    meta_csv, meta_jsonl = folder / "metadata.csv", folder / "metadata.jsonl"
    if meta_csv.exists():
        with open(meta_csv, newline="") as f:
            for i, row in enumerate(csv.DictReader(f), 2):
                if "file_name" not in row:
                    raise ValueError(f"{meta_csv}: needs a file_name column and a caption column")
                out[Path(row["file_name"]).name] = _caption_of(row, f"{meta_csv}:{i}")
    for path, key in ((meta_jsonl, "file_name"), (folder / "captions.jsonl", "file")):
        if not path.exists():
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                name = str(row[key])
            except (ValueError, KeyError, TypeError):
                raise ValueError(
                    f"{path}:{i}: each line must be a JSON object with {key!r} and a caption"
                ) from None
            out[Path(name).name] = _caption_of(row, f"{path}:{i}")
    for f in files:
        side = f.with_suffix(".txt")
        if side.exists():
            out[f.name] = side.read_text().strip()
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
    x = torch.from_numpy(np.array(frames)).permute(0, 3, 1, 2).float()  # a writable copy
    x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def make_source(data: str | None, exclude=None, for_text: bool = False, objects_p=None, pairs_p: float = 0.0):
    """'flatland' (or None) for the built-in world, else a folder of videos. for_text: clips
    at the model's frame rate whose captions describe exactly what is seen. objects_p: how
    often a Flatland scene holds 1, 2 and 3 objects (None: sample.OBJECTS_P)."""
    if data in (None, "flatland"):
        if for_text:
            return FlatlandSource(
                exclude, fps_choices=(8,), window=False, objects_p=objects_p, pairs_p=pairs_p
            )
        return FlatlandSource(exclude, objects_p=objects_p, pairs_p=pairs_p)
    return FolderSource(data)


def batch(source, buckets, batch_size: int, seed: int, step: int, rank: int = 0):
    """The batch for one step: (bucket, samples), a pure function of its arguments."""
    rng = batch_rng(seed, step, rank)
    b = pick_bucket(buckets, rng)
    return b, draw(source, rng, b, batch_size)


def draw(source, rng: np.random.Generator, bucket: Bucket, n: int) -> list[Sample]:
    """n samples of one bucket: a source that makes minimal pairs keeps each pair together."""
    if hasattr(source, "sample_many"):
        return source.sample_many(rng, bucket, n)
    return [source.sample(rng, bucket) for _ in range(n)]
