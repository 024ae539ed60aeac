"""A request's media read in one step: the files it names by path become frames.

The CLI and its batch lines describe media by path (a batch line is the request's own JSON,
request.GenerationRequest.to_json, as the server stores it). Reading them here, before any
model loads, means a missing or unreadable file is refused with its name and nothing has
been computed; `Model.run` then gets frames and reads nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from nanosora.generation.request import GenerationRequest


def read_media(req: GenerationRequest, base: Path = Path(".")) -> GenerationRequest:
    """`req` with every medium given as a path (image, video, connect, after) read, relative
    paths taken from `base`. A clip to follow (`after`) also brings the story it showed, its
    prompts after the story it followed, unless the request gives a story of its own."""
    from nanosora import video

    def path(p) -> str:
        return str(Path(p) if Path(p).is_absolute() else base / p)

    def named(v) -> bool:
        return isinstance(v, (str, Path))

    out = {}
    if named(req.image):
        out["image"] = video.read_image(path(req.image))
    if named(req.video):
        out["video"] = video.read(path(req.video)).frames
    if any(named(c) for c in req.connect):
        out["connect"] = tuple(video.read(path(c)).frames if named(c) else c for c in req.connect)
    if named(req.after):
        clip = video.read(path(req.after))
        out["after"] = clip.frames
        if not req.story:
            prompt = clip.metadata.get("prompt")
            said = prompt if isinstance(prompt, list) else [prompt] if isinstance(prompt, str) else []
            out["story"] = (*clip.metadata.get("story", []), *said)
    return dataclasses.replace(req, **out) if out else req
