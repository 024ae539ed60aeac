"""A layout given by the user instead of the planner's: per object, its words and its box at
key frames, in fractions of the frame, interpolated linearly between them.

    [{"words": "A big red circle starts at the left ...",
      "keyframes": [{"t": 0.0, "box": [0.1, 0.4, 0.4, 0.7]}, {"t": 2.0, "box": [0.6, 0.4, 0.9, 0.7]}]},
     ...]

It is the same form as the planner's layout in a result's metadata (`metadata["layout"]`), so
a user can read a plan, move one object's path and generate again with the same seed. Times
are seconds from the clip's start; before the first key frame and after the last, the box
holds still.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ObjectPath:
    words: str
    times: tuple[float, ...]
    boxes: tuple[tuple[float, float, float, float], ...]


def parse(layout: Any, field: str = "layout") -> tuple[ObjectPath, ...]:
    """A user's layout (a list as above, or ObjectPaths), checked; errors name the field."""
    if isinstance(layout, tuple) and all(isinstance(o, ObjectPath) for o in layout):
        return layout
    if not isinstance(layout, list) or not layout:
        raise ValueError(
            f"{field} must be a non-empty list of objects, each {{'words': str, 'keyframes': [...]}}"
        )
    out = []
    for i, o in enumerate(layout):
        where = f"{field}[{i}]"
        if not isinstance(o, dict) or set(o) - {"words", "keyframes"} or not {"words", "keyframes"} <= set(o):
            raise ValueError(
                f"{where} must be {{'words': str, 'keyframes': [{{'t': seconds, 'box': [x0, y0, x1, y1]}}]}}"
            )
        if not isinstance(o["words"], str) or not o["words"].strip():
            raise ValueError(f"{where}.words must say which object it is (its words in the prompt)")
        keys = o["keyframes"]
        if not isinstance(keys, list) or not keys:
            raise ValueError(
                f"{where}.keyframes must be a non-empty list of {{'t': seconds, 'box': [x0, y0, x1, y1]}}"
            )
        times, boxes = [], []
        for j, k in enumerate(keys):
            kw = f"{where}.keyframes[{j}]"
            if not isinstance(k, dict) or set(k) != {"t", "box"}:
                raise ValueError(f"{kw} must be {{'t': seconds, 'box': [x0, y0, x1, y1]}}")
            t, box = k["t"], k["box"]
            if not isinstance(t, (int, float)) or isinstance(t, bool) or t < 0:
                raise ValueError(f"{kw}.t {t!r} is not valid: use seconds from the clip's start, 0 or more")
            if times and t <= times[-1]:
                raise ValueError(
                    f"{kw}.t {t!r} is out of order: key frames go forward in time ({times[-1]} before it)"
                )
            ok = isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)
            if not ok or not all(0 <= v <= 1 for v in box) or not (box[0] < box[2] and box[1] < box[3]):
                raise ValueError(
                    f"{kw}.box {box!r} is not valid: use [x0, y0, x1, y1] in fractions of the frame, "
                    "each in [0, 1], with x0 < x1 and y0 < y1"
                )
            times.append(float(t))
            boxes.append(tuple(float(v) for v in box))
        out.append(ObjectPath(o["words"].strip(), tuple(times), tuple(boxes)))
    return tuple(out)


def check_length(paths: tuple[ObjectPath, ...], seconds: float, field: str = "layout") -> None:
    """Refuse key frames past the clip's end."""
    for i, p in enumerate(paths):
        if p.times[-1] > seconds + 1e-6:
            raise ValueError(
                f"{field}[{i}] has a key frame at {p.times[-1]:g} s, past the clip's end at {seconds:g} s"
            )


def to_json(paths: tuple[ObjectPath, ...]) -> list[dict]:
    return [
        {
            "words": p.words,
            "keyframes": [{"t": t, "box": list(b)} for t, b in zip(p.times, p.boxes, strict=True)],
        }
        for p in paths
    ]


def plan_of(paths: tuple[ObjectPath, ...], encoder):
    """The layout as a planner.Plan: each object's words embedded as the planner's are."""
    from nanosora.networks.planner import Plan

    emb = encoder.sentence_embeddings([p.words for p in paths])

    def boxes_at(times: np.ndarray) -> np.ndarray:
        out = np.zeros((len(paths), len(times), 4), np.float32)
        for k, p in enumerate(paths):
            b = np.array(p.boxes)
            for c in range(4):
                out[k, :, c] = np.interp(times, p.times, b[:, c])
        return out

    return Plan([p.words for p in paths], emb, boxes_at)
