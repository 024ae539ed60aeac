"""Reading and writing video and images: mp4 (H.264 via PyAV), GIF, PNG frames, contact sheets.

Frames are uint8 arrays (T, H, W, 3). Every write goes to a temporary file beside the target
and is renamed into place, so a failed or interrupted write never leaves a half file.
Every read failure is a `VideoError` that names the file.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from nanosora.atomic import atomic_path

VIDEO_EXTS = (".mp4",)
WRITE_EXTS = (".mp4", ".gif", ".png")


class VideoError(ValueError):
    """A video or image could not be read or written; the message names the file."""


@dataclass
class Video:
    frames: np.ndarray  # (T, H, W, 3) uint8
    fps: float
    metadata: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """How long the clip plays: each frame lasts 1/fps (a still, one frame, is 0 s)."""
        return len(self.frames) / self.fps if len(self.frames) > 1 else 0.0

    def save(self, path: str | os.PathLike) -> Path:
        """Write by extension (a generated video, provenance.SealedVideo, is also sealed)."""
        return write(path, self.frames, self.fps, self.metadata)


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 3 and frames.shape[-1] == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(
            f"frames must be a non-empty uint8 array (T, H, W, 3); got {frames.dtype} {frames.shape}"
        )
    return frames


def write(path: str | os.PathLike, frames: np.ndarray, fps: float, metadata: dict | None = None) -> Path:
    """Write frames by the extension: .mp4, .gif, or .png (a contact sheet of every frame).
    A path ending in a separator, or an existing folder, gets one PNG per frame."""
    frames = _check_frames(frames)
    if not 0 < fps <= 240:
        raise ValueError(f"fps {fps!r} is not valid: use a number above 0 and at most 240")
    path_s = os.fspath(path)
    if path_s.endswith(os.sep) or Path(path_s).is_dir():
        return write_png_frames(path_s, frames, metadata)
    path = Path(path_s)
    ext = path.suffix.lower()
    if ext == ".mp4":
        write_mp4(path, frames, fps, metadata)
    elif ext == ".gif":
        write_gif(path, frames, fps, metadata)
    elif ext == ".png":
        write_png(path, contact_sheet(frames), metadata)
    else:
        raise ValueError(
            f"{path}: unknown extension {ext or '(none)'!r}; use one of {', '.join(WRITE_EXTS)}, "
            "or a folder ending in / for PNG frames"
        )
    return path


def write_mp4(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float,
    metadata: dict | None = None,
    crf: int = 12,
) -> None:
    """H.264 in yuv420p (plays everywhere, browsers included). Provenance goes in the
    container's `comment` tag as JSON. Odd sides are padded by one edge pixel because
    4:2:0 chroma needs even sides."""
    import av

    frames = _check_frames(frames)
    t, h, w, _ = frames.shape
    ph, pw = h % 2, w % 2
    if ph or pw:
        frames = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w + pw, h + ph, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        if metadata:
            out.metadata["comment"] = json.dumps(metadata, ensure_ascii=False)
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def remux_mp4(path: str | os.PathLike, metadata: dict) -> None:
    """Replace an mp4's provenance comment without re-encoding: the encoded packets are copied
    as they are into a new container, so the decoded frames do not change."""
    import av

    path = Path(path)
    with atomic_path(path) as tmp, av.open(str(path)) as src, av.open(str(tmp), "w", format="mp4") as out:
        s_in = src.streams.video[0]
        s_out = out.add_stream_from_template(s_in)
        out.metadata["comment"] = json.dumps(metadata, ensure_ascii=False)
        for packet in src.demux(s_in):
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            packet.stream = s_out
            out.mux(packet)


def write_gif(path: str | os.PathLike, frames: np.ndarray, fps: float, metadata: dict | None = None) -> None:
    frames = _check_frames(frames)
    images = [Image.fromarray(f) for f in frames]
    extra = {"comment": json.dumps(metadata, ensure_ascii=False).encode()} if metadata else {}
    with atomic_path(path) as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=max(1, round(1000 / fps)),
            loop=0,
            optimize=False,
            **extra,
        )


def _png_info(metadata: dict | None) -> PngImagePlugin.PngInfo | None:
    if not metadata:
        return None
    info = PngImagePlugin.PngInfo()
    info.add_itxt("nanosora", json.dumps(metadata, ensure_ascii=False))
    return info


def write_png(path: str | os.PathLike, image: np.ndarray, metadata: dict | None = None) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(
            tmp, format="PNG", pnginfo=_png_info(metadata)
        )


def write_png_frames(folder: str | os.PathLike, frames: np.ndarray, metadata: dict | None = None) -> Path:
    """One PNG per frame, frame_00000.png and so on, each written atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(_check_frames(frames)):
        write_png(folder / f"frame_{i:05d}.png", f, metadata)
    return folder


def contact_sheet(frames: np.ndarray, columns: int | None = None, gap: int = 1) -> np.ndarray:
    """Tile frames into one image, row by row, separated by `gap` mid-gray pixels."""
    frames = _check_frames(frames)
    t, h, w, _ = frames.shape
    cols = columns or min(t, max(1, math.ceil(math.sqrt(t * h / w))))
    rows = math.ceil(t / cols)
    sheet = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), 96, np.uint8)
    for i, f in enumerate(frames):
        r, c = divmod(i, cols)
        sheet[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = f
    return sheet


def _describe_failure(path: Path) -> str:
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "is a folder, not a video file"
    if path.stat().st_size == 0:
        return "the file is empty"
    return "not a readable video (truncated, corrupt or not a video format)"


def read(path: str | os.PathLike, max_frames: int | None = None) -> Video:
    """Read a video (mp4 and anything FFmpeg decodes, GIF included) or a still image (one
    frame). Raises VideoError naming the file for a missing, empty, truncated or non-video
    file."""
    import av

    path = Path(path)
    if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp"):
        return Video(read_image(path)[None], fps=1.0, metadata=_image_metadata(path))
    problem = _describe_failure(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise VideoError(f"{path}: {problem}")
    frames = []
    try:
        with av.open(str(path), "r", timeout=10.0) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: the file holds no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            meta = _parse_comment(container.metadata.get("comment"))
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames and len(frames) >= max_frames:
                    break
    except VideoError:
        raise
    except (av.FFmpegError, OSError, ValueError, EOFError) as e:
        if not frames:  # a truncated tail still yields the frames before it
            why = getattr(e, "strerror", None) or str(e)
            raise VideoError(f"{path}: {problem} ({why})") from None
    if not frames:
        raise VideoError(f"{path}: {problem} (no frames could be decoded)")
    fps = float(rate) if rate else 8.0
    return Video(np.stack(frames), fps=fps, metadata=meta)


def _parse_comment(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"comment": text}
    return value if isinstance(value, dict) else {"comment": value}


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as uint8 (H, W, 3). Raises VideoError naming the file."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise VideoError(f"{path}: {_describe_failure(path)}")
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise VideoError(f"{path}: not a readable image ({e})") from None


def _image_metadata(path: Path) -> dict:
    with Image.open(path) as im:
        text = im.info.get("nanosora")
    return _parse_comment(text) if text else {}


def read_metadata(path: str | os.PathLike) -> dict:
    """The provenance a nanosora writer stored in the file (an empty dict if none)."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".gif"):
        return read(path, max_frames=1).metadata
    if not path.is_file() or path.stat().st_size == 0:
        raise VideoError(f"{path}: {_describe_failure(path)}")
    try:
        if path.suffix.lower() == ".png":
            return _image_metadata(path)
        with Image.open(path) as im:
            return _parse_comment(im.info.get("comment", b"").decode(errors="replace") or None)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise VideoError(f"{path}: not a readable image ({e})") from None
