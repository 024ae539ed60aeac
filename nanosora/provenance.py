"""Provenance: a manifest sealed into every generated file, an invisible watermark in its
pixels, and C2PA Content Credentials (credentials.py) that any C2PA verifier reads.
`nanosora verify FILE` reports all three.

- The manifest (prompt, model, seed, time, ...) is the file's metadata. Its `content_sha256`
  is a hash over the decoded frames and the rest of the manifest, so a re-encoded, cropped
  or retouched video, or an edited manifest, no longer matches it.
- The watermark survives what the hash does not (re-encoding, a changed container, a lost
  manifest): a 32-bit pattern spread over the frame in 2x2-pixel chips of +-3 grey levels,
  read back by correlating high-passed luma with the keyed chip pattern, summed over frames
  (spread-spectrum watermarking, Cox et al. 1997, in its simplest form).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanosora import credentials
from nanosora import video as vio
from nanosora.video import Video

KEY = 0x6E616E6F  # "nano": seeds the chip pattern
BITS = 32
MAGIC = np.unpackbits(np.frombuffer(b"sora", np.uint8)).astype(np.int8) * 2 - 1  # 32 bits as +-1
STRENGTH = 3.0
MARK = "nanosora-v1"  # names the watermark scheme in the manifest
MIN_MATCH = 28  # of 32 bits; chance agreement of random content is below 1e-5


def _pattern(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Per 2x2 block: which bit it carries, and its chip sign."""
    hb, wb = (h + 1) // 2, (w + 1) // 2
    rng = np.random.default_rng([KEY, hb, wb])
    return rng.integers(0, BITS, (hb, wb)), rng.choice(np.array([-1, 1], np.int8), (hb, wb))


EMBED_CHUNK = 17  # frames marked at once


def embed(frames: np.ndarray, strength: float = STRENGTH) -> np.ndarray:
    """The frames (T, H, W, 3) uint8 with the watermark added to every frame."""
    t, h, w, _ = frames.shape
    bit, chip = _pattern(h, w)
    delta = (strength * chip * MAGIC[bit]).repeat(2, 0).repeat(2, 1)[:h, :w, None].astype(np.float32)
    out = np.empty_like(frames)
    # a few frames at a time: float copies of a whole 60 s clip raised the peak memory of a
    # generation with its duration (by 87 MB at 60 s, 64x64)
    for s in range(0, t, EMBED_CHUNK):
        x = frames[s : s + EMBED_CHUNK].astype(np.float32)
        # lift values within `strength` of 0 or 255 first, so that both chip signs fit (a black
        # background would otherwise clip away half the pattern)
        np.clip(x, strength, 255 - strength, out=x)
        x += delta
        out[s : s + EMBED_CHUNK] = np.clip(x, 0, 255, out=x).round()
    return out


def detect(frames: np.ndarray) -> int:
    """How many of the 32 watermark bits read back correctly (about 16 for unmarked frames)."""
    t, h, w, _ = frames.shape
    bit, chip = _pattern(h, w)
    hb, wb = bit.shape
    y = frames.astype(np.float32).mean(-1)
    y = np.pad(y, ((0, 0), (0, 2 * hb - h), (0, 2 * wb - w)), mode="edge")
    blocks = y.reshape(t, hb, 2, wb, 2).mean((2, 4)).sum(0)  # block means summed over frames
    p = np.pad(blocks, 1, mode="edge")
    local = sum(p[i : i + hb, j : j + wb] for i in range(3) for j in range(3)) / 9.0
    score = np.bincount(bit.ravel(), weights=(chip * (blocks - local)).ravel(), minlength=BITS)
    return int((np.sign(score) == MAGIC).sum())


def content_hash(frames: np.ndarray, manifest: dict) -> str:
    """sha256 over the decoded frames and the manifest (without its own hash)."""
    rest = {k: v for k, v in manifest.items() if k != "content_sha256"}
    h = hashlib.sha256(json.dumps(rest, sort_keys=True, ensure_ascii=False).encode())
    h.update(np.ascontiguousarray(frames).tobytes())
    return h.hexdigest()


class SealedVideo(Video):
    """A generated, watermarked video: saving it writes the file and seals its manifest."""

    def save(self, path: str | Path) -> Path:
        return save(self, path)


def save(video: Video, path: str | Path) -> Path:
    """Write a generated (already watermarked) video and seal it: write, decode what was
    written, hash it, then store the hash in the file's manifest (for mp4 by copying the
    encoded stream into a new container, so the frames a reader decodes are the ones that
    were hashed); last, sign its C2PA manifest (credentials.sign), which changes no frame and
    no byte of our manifest. A folder of PNG frames carries the manifest unsealed and unsigned."""
    meta = dict(video.metadata)
    who = credentials.identity()  # first: a misconfigured certificate is refused before any write
    path = vio.write(path, video.frames, video.fps, meta)
    if path.is_dir():
        return path
    decoded = vio.read(path).frames
    meta["content_sha256"] = content_hash(decoded, meta)
    if path.suffix.lower() == ".mp4":
        vio.remux_mp4(path, meta)
    else:
        vio.write(path, video.frames, video.fps, meta)
    return credentials.sign(path, meta, who)


@dataclass
class Report:
    path: str
    manifest: dict
    sealed: bool  # a manifest with a content hash is present
    intact: bool  # the hash matches the decoded frames and manifest
    watermark_bits: int
    c2pa: credentials.Credentials | None = None  # Content Credentials, when the file has any

    @property
    def watermarked(self) -> bool:
        return self.watermark_bits >= MIN_MATCH

    @property
    def authentic(self) -> bool:
        """Our seal matches, and Content Credentials, if the file has them, validate."""
        return self.intact and (self.c2pa is None or self.c2pa.untouched)

    def verdict(self) -> str:
        if self.intact and not self.authentic:
            return (
                "changed: the frames match the seal, but the file was altered after its Content "
                "Credentials were signed"
            )
        if self.sealed and self.intact:
            return "authentic: made by nanosora, unchanged since"
        if self.sealed and self.watermarked:
            return "changed: the watermark is there, but the frames or manifest were altered or re-encoded"
        if self.watermarked:
            return "watermarked but without a manifest: made by nanosora, then re-encoded or stripped"
        if self.sealed:
            return "a nanosora manifest, but neither the hash nor the watermark matches: tampered"
        return "no nanosora manifest or watermark found"

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "verdict": self.verdict(),
            "sealed": self.sealed,
            "intact": self.intact,
            "watermark": self.watermarked,
            "watermark_bits": f"{self.watermark_bits}/{BITS}",
            "content_credentials": credentials.summary(self.c2pa),
            "c2pa": None if self.c2pa is None else self.c2pa.to_dict(),
            "manifest": self.manifest,
        }


def verify(path: str | Path) -> Report:
    v = vio.read(path)
    manifest = vio.read_metadata(path) if Path(path).suffix.lower() == ".png" else v.metadata
    sealed = "content_sha256" in manifest
    intact = sealed and content_hash(v.frames, manifest) == manifest["content_sha256"]
    return Report(str(path), manifest, sealed, intact, detect(v.frames), credentials.read(path))
