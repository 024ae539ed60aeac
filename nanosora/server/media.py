"""A job's input media: an uploaded or data-URL image, an uploaded video or one of the
server's own, each saved as the job's own copy (so that a job keeps its input if the source
goes) before the job is queued."""

from __future__ import annotations

import base64
import binascii
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanosora.server.errors import APIError
from nanosora.server.settings import MAX_SIDE, Settings
from nanosora.server.store import Store


async def read_upload(upload, param: str, settings: Settings) -> bytes:
    data = await upload.read(settings.max_bytes + 1)
    if len(data) > settings.max_bytes:
        raise APIError(
            413, f"{param} is larger than {settings.max_upload_mb:g} MB", param, "request_too_large"
        )
    if not data:
        raise APIError(400, f"{param} is empty", param)
    return data


def save_image(data: bytes, param: str, path: Path) -> Path:
    from PIL import Image

    from nanosora.video import write_png

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            arr = np.asarray(im.convert("RGB"))
    except Exception:
        raise APIError(
            400, f"{param} is not a readable image (png, jpeg, webp)", param, "invalid_image"
        ) from None
    write_png(path, arr)
    return path


async def image_input(fields: dict, files: dict, vid: str, settings: Settings) -> Path | None:
    """The request's input_reference (an upload or {"image_url": a base64 data URL}) saved
    as the job's image, or None."""
    path = settings.inputs / f"{vid}.png"
    if "input_reference" in files:
        data = await read_upload(files["input_reference"], "input_reference", settings)
        return save_image(data, "input_reference", path)
    ref = fields.get("input_reference")
    if ref is None:
        return None
    url = ref.get("image_url") if isinstance(ref, dict) else ref
    if not isinstance(url, str) or not url.startswith("data:") or "," not in url:
        raise APIError(
            400,
            'input_reference must be an uploaded image or {"image_url": a base64 data URL} '
            "(remote URLs are not fetched)",
            "input_reference",
        )
    try:
        data = base64.b64decode(url.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, "input_reference: the data URL is not valid base64", "input_reference") from None
    if len(data) > settings.max_bytes:
        raise APIError(
            413, f"input_reference is larger than {settings.max_upload_mb:g} MB", "input_reference"
        )
    return save_image(data, "input_reference", path)


def found(store: Store, vid: str) -> dict:
    job = store.get(vid)
    if job is None:
        raise APIError(404, f"no video with id {vid!r}", "video_id", "video_not_found")
    return job


@dataclass(frozen=True)
class VideoInput:
    path: Path  # the job's own copy
    seconds: float  # its duration, at its own frame rate
    width: int  # its size snapped to what the model makes (multiples of 16)
    height: int


async def video_input(fields: dict, files: dict, vid: str, store: Store, settings: Settings) -> VideoInput:
    """The video to extend or edit (an upload or {"id": a completed video}), saved as this
    job's own input."""
    from nanosora.video import VideoError, read

    path = settings.inputs / f"{vid}.mp4"
    if "video" in files:
        path.write_bytes(await read_upload(files["video"], "video", settings))
    else:
        ref = fields.get("video")
        src_id = ref.get("id") if isinstance(ref, dict) else None
        if not src_id or not isinstance(src_id, str):
            raise APIError(400, 'video is required: upload a file or send {"id": "video_..."}', "video")
        src = found(store, src_id)
        if src["status"] != "completed":
            raise APIError(
                400, f"video {src_id} is {src['status']}, not completed", "video", "video_not_ready"
            )
        shutil.copyfile(store.path(src_id, "video"), path)
    try:
        clip = read(path)
    except VideoError:
        path.unlink(missing_ok=True)
        raise APIError(400, "video is not a readable video file (mp4)", "video", "invalid_video") from None
    h, w = clip.frames.shape[1:3]

    def snap(v: int) -> int:
        return min(MAX_SIDE, max(32, 16 * round(v / 16)))

    return VideoInput(path, clip.seconds, snap(w), snap(h))
