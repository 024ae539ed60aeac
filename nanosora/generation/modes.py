"""Every generation mode but shots as one row of a table: the frames it starts from, how its
length is counted, and the timeline it builds and fills (timeline.py).

    request --given--> frames to start from (resized to the output) --build--> video
                                                                      uses fill(timeline)

`Model.run` looks a mode up in MODES; a new mode is one builder and one row. Shots are a
sequence of text clips (model.py), each planned from its own prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanosora.generation import timeline
from nanosora.generation.request import GenerationRequest, clip_frames, frames_for
from nanosora.generation.timeline import Timeline
from nanosora.networks.vae import check_size
from nanosora.video import Video


def as_frames(x, what: str) -> np.ndarray:
    """A path, Video, PIL image or uint8 array -> uint8 (T, H, W, 3)."""
    from nanosora import video

    if isinstance(x, (str, Path)):
        return video.read(x).frames
    if isinstance(x, Video):
        return x.frames
    if hasattr(x, "convert"):  # a PIL image
        return np.asarray(x.convert("RGB"))[None]
    a = np.asarray(x)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8 or not len(a):
        raise ValueError(
            f"{what} must be a file path, a PIL image or a uint8 array (H, W, 3) or (T, H, W, 3); "
            f"got {a.dtype} {a.shape}"
        )
    return a


def resize(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Every frame resized to width x height (no-op when it already is)."""
    from PIL import Image

    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.BICUBIC)) for f in frames])


def resolve_size(width: int | None, height: int | None, ref: np.ndarray | None) -> tuple[int, int]:
    """The output size: as asked; else that of the given image or video, rounded to multiples
    of 16; else 64x64."""

    def snap(v):
        return max(16, 16 * round(v / 16))

    if ref is not None:
        width = width or snap(ref.shape[2])
        height = height or snap(ref.shape[1])
    width, height = width or 64, height or 64
    check_size(height, width, 16)
    return width, height


# fill(timeline, strength=1.0, plan_from=0) -> the timeline's frames, every unknown one made
# (Model.run binds the text, the plan, the seed and the sampler)
Fill = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Given:
    """What a mode starts from, at the output's size."""

    ref: np.ndarray | None  # the image, the video extended or edited, connect's first clip
    width: int
    height: int
    new: int  # frames to make (for extend and connect: frames added)
    keep: int = 0  # frames shown of a clip that starts here (0: all that are made)


def _made(req: GenerationRequest, g: Given, fill: Fill) -> np.ndarray:
    tl = Timeline.blank(g.new, g.height, g.width)
    if g.ref is not None:
        tl.put(req.image_frame, g.ref)
    return fill(tl)


def _still_or_image(req: GenerationRequest, g: Given, fill: Fill) -> np.ndarray:
    return _made(req, g, fill)[: g.keep or None]


def _loop(req: GenerationRequest, g: Given, fill: Fill) -> np.ndarray:
    # the loop's period is the clip's shown length: its frame `keep` is its frame 0 again
    # (a loop shorter than timeline.LOOP_MIN frames has no room to turn, so it lasts that long)
    out = _made(req, g, fill)
    keep = max(g.keep or len(out), timeline.LOOP_MIN)
    return fill(timeline.loop_timeline(out, keep))[:keep]


def _extend(req: GenerationRequest, g: Given, fill: Fill) -> np.ndarray:
    tl = timeline.extend_timeline(g.ref, g.new, backward=req.direction == "backward")
    # the caption's time starts where the given clip ends
    return fill(tl, plan_from=len(g.ref) - 1)


def _edit(req: GenerationRequest, g: Given, fill: Fill) -> np.ndarray:
    tl = Timeline.blank(len(g.ref), g.height, g.width)
    tl.init = g.ref
    return fill(tl, strength=req.strength)


def _connect(req: GenerationRequest, g: Given, fill: Fill) -> np.ndarray:
    b = resize(as_frames(req.connect[1], "the second video of connect"), g.width, g.height)
    tl, head, tail = timeline.connect_timeline(g.ref, b, g.new)
    return np.concatenate([head, fill(tl, plan_from=len(g.ref) - len(head) - 1), tail])


@dataclass(frozen=True)
class Mode:
    build: Callable[[GenerationRequest, Given, Fill], np.ndarray]
    # the request's frames it starts from, and what an error calls them (None: nothing given)
    given: Callable[[GenerationRequest], tuple[object, str] | None] = lambda req: None
    # a clip that starts here is made as 1 + 4k frames and shows seconds x fps of them (2 s at
    # 8 fps: 17 made, 16 shown); one that continues given frames adds exactly seconds x fps
    starts: bool = True
    # a backward extension's new frames come before its caption's time starts: no plan
    planned: Callable[[GenerationRequest], bool] = lambda req: True


def _image(req: GenerationRequest):
    return None if req.image is None else (req.image, "image")


MODES: dict[str, Mode] = {
    "text": Mode(_still_or_image),
    "image": Mode(_still_or_image, _image),
    "loop": Mode(_loop, _image),
    "extend": Mode(
        _extend, lambda r: (r.video, "video"), starts=False, planned=lambda r: r.direction != "backward"
    ),
    "edit": Mode(_edit, lambda r: (r.video, "video"), starts=False),
    "connect": Mode(_connect, lambda r: (r.connect[0], "the first video of connect"), starts=False),
}


def given(req: GenerationRequest, fps: int) -> Given:
    """The frames the request's mode starts from, the output size, and the frames to make."""
    mode = MODES.get(req.mode, MODES["text"])  # shots: each shot a text clip
    src = mode.given(req)
    ref = None if src is None else as_frames(*src)
    if req.mode in ("image", "loop") and ref is not None:
        ref = ref[:1]
    width, height = resolve_size(req.width, req.height, ref)
    if ref is not None:
        ref = resize(ref, width, height)
    new, keep = req.frames, 0
    if new is None and mode.starts:
        new, keep = frames_for(req.length, fps), clip_frames(req.length, fps)
    elif new is None:
        new = int(round(req.length * fps))
    return Given(ref, width, height, new, keep)
