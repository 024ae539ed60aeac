"""Ground-truth layouts of Flatland scenes: every object's box in every latent frame, and
the sentence of the detailed caption that describes it. Training data only (the latent
cache and the layout planner's targets): at generation a layout comes from the learned
planner (planner.py) or from the user, never from here.

A box is (x0, y0, x1, y1) in fractions of the frame, clipped to it; an object out of view
(off screen, or in another shot) has an empty box.
"""

from __future__ import annotations

import re

import numpy as np

from nanosora.networks.layout import latent_boxes
from nanosora.world import spec
from nanosora.world.scene import Obj, Scene, camera_offset, object_track, shot_bounds

# the most objects a clip lists: shots repeat their objects, up to three shots
MAX_OBJECTS = spec.MAX_OBJECTS * 3

# Each object of a detailed caption has one sentence, the only kind that says where the object
# starts (world.caption._object_sentence); captions list the objects shot by shot, in order.
_OBJECT_SENTENCE = re.compile(r"\bstarts at\b")


def object_sentences(sentences: list[str]) -> list[int]:
    """Indices of the sentences of a detailed caption that introduce an object, in order."""
    return [i for i, s in enumerate(sentences) if _OBJECT_SENTENCE.search(s)]


def _rel(obj: Obj) -> tuple[float, float, float, float]:
    """Distances from the centre to the left, right, top and bottom edges, in units of the
    object's extent at scale 1 (a spinning object: the radius of its turning corners)."""
    if obj.motion == "spins":
        r = {"circle": 0.5, "square": 0.5**0.5, "triangle": 1 / 3**0.5}[obj.shape]
        return r, r, r, r
    if obj.shape == "triangle":
        return 0.5, 0.5, 1 / 3**0.5, 1 / (2 * 3**0.5)
    return 0.5, 0.5, 0.5, 0.5


def object_boxes(
    obj: Obj, objects: list[Obj], t: np.ndarray, aspect: float, camera: str | None
) -> np.ndarray:
    """(len(t), 4) boxes of one object at times t (seconds from its shot's start), clipped."""
    tr = object_track(obj, t, aspect, objects)
    ex = obj.extent * min(1.0, 1.0 / aspect) * tr.scale
    ey = obj.extent * min(aspect, 1.0) * tr.scale
    left, right, top, bottom = _rel(obj)
    x = tr.x - camera_offset(camera, t)
    box = np.stack([x - left * ex, tr.y - top * ey, x + right * ex, tr.y + bottom * ey], -1)
    return np.clip(box, 0.0, 1.0)


def scene_boxes(scene: Scene, frame_times: np.ndarray, seconds: float) -> np.ndarray:
    """(objects of every shot, len(frame_times), 4): each object's box at each clip time,
    empty outside its shot."""
    out = []
    for (s0, s1), shot in zip(shot_bounds(scene, seconds), scene.shots, strict=True):
        last = shot is scene.shots[-1]
        inside = (frame_times >= s0) & ((frame_times < s1) | last)
        for obj in shot.objects:
            box = object_boxes(obj, shot.objects, frame_times - s0, scene.aspect, shot.camera)
            box[~inside] = 0.0
            out.append(box)
    return np.stack(out) if out else np.zeros((0, len(frame_times), 4))


def clip_layout(
    scene: Scene, caption_seconds: float, start: int, frames: int, fps: float, time_factor: int
) -> np.ndarray:
    """(objects, latent frames, 4) boxes of a clip of `frames` frames from frame `start` of
    the scene rendered for `caption_seconds` at `fps` (data.Sample's clip)."""
    t = (start + np.arange(frames)) / fps
    boxes = scene_boxes(scene, t, caption_seconds)
    return latent_boxes(boxes, 1 + (frames - 1) // time_factor, time_factor)
