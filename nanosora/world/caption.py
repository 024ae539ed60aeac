"""Captions for Flatland scenes: the detailed caption training uses and the short prompt a
person types, both with paraphrase variants drawn from language.py.

The detailed caption is Sora's "re-captioning": full sentences stating the background,
every object's size, colour, shape, start and motion, the camera and the events (passes,
collisions), in order. The short prompt follows the grammar of docs/world.md, so the parser
reads it back to the same scene description.
"""

from __future__ import annotations

import numpy as np

from nanosora.world import spec
from nanosora.world.language import (
    COLOUR_WORDS,
    SHAPE_WORDS,
    SIZE_WORDS,
    join_shots,
    motion_phrase,
    paraphrase,
)
from nanosora.world.scene import Obj, Scene, Shot, half_extents, object_track, shot_bounds

_NUMBERS = {1: "one object", 2: "two objects", 3: "three objects"}
_ORDINALS = ["first", "second", "third", "fourth"]
_DETAILED_MOTION = {
    "stays still": "stays still",
    "moves left": "moves steadily to the left",
    "moves right": "moves steadily to the right",
    "moves up": "moves steadily upward",
    "moves down": "moves steadily downward",
    "bounces": "bounces diagonally around the frame, reflecting off the edges",
    "falls": "falls, speeding up as it drops, and bounces on the bottom edge",
    "spins": "spins in place",
    "grows": "grows to twice its size",
    "shrinks": "shrinks to half its size",
}


def where(x: float, y: float) -> str:
    """A place in the frame in words, from frame fractions."""
    col = "left" if x < 1 / 3 else ("right" if x > 2 / 3 else "")
    row = "top" if y < 1 / 3 else ("bottom" if y > 2 / 3 else "")
    if not row and not col:
        return "the center"
    return "the " + " ".join(w for w in (row, col) if w)


def _overlaps(a: Obj, b: Obj, objects: list[Obj], aspect: float, seconds: float) -> bool:
    t = np.linspace(0, seconds, 49)
    ta, tb = object_track(a, t, aspect, objects), object_track(b, t, aspect, objects)
    ea, eb = half_extents(a, aspect), half_extents(b, aspect)
    ox = (ta.x - ea[0] < tb.x + eb[1]) & (tb.x - eb[0] < ta.x + ea[1])
    oy = (ta.y - ea[2] < tb.y + eb[3]) & (tb.y - eb[2] < ta.y + ea[3])
    return bool(np.any(ox & oy))


def _events(shot: Shot, aspect: float, seconds: float) -> list[str]:
    out, objs = [], shot.objects
    for i, a in enumerate(objs):
        if a.motion == "collides" and a.partner is not None and a.partner > i:
            b = objs[a.partner]
            out.append(f"The {a.colour} {a.shape} and the {b.colour} {b.shape} collide and bounce apart.")
    for i in range(len(objs)):
        for j in range(i + 1, len(objs)):
            a, b = objs[i], objs[j]
            if "collides" in (a.motion, b.motion) or not _overlaps(a, b, objs, aspect, seconds):
                continue
            # later objects are drawn on top: say it from the point of view of the mover
            if b.moving or not a.moving:
                out.append(f"The {b.colour} {b.shape} passes in front of the {a.colour} {a.shape}.")
            else:
                out.append(f"The {a.colour} {a.shape} passes behind the {b.colour} {b.shape}.")
    return out


def _object_sentence(o: Obj, objs: list[Obj], rng: np.random.Generator | None, p: float) -> str:
    size = paraphrase(o.size, SIZE_WORDS, rng, p) if rng else o.size
    colour = paraphrase(o.colour, COLOUR_WORDS, rng, p) if rng else o.colour
    shape = paraphrase(o.shape, SHAPE_WORDS, rng, p) if rng else o.shape
    art = "An" if size[0] in "aeiou" else "A"
    if o.motion == "collides":
        b = objs[o.partner]
        toward = "right" if o.x < b.x else "left"
        what = f"moves {toward} toward the {b.colour} {b.shape}"
    else:
        what = _DETAILED_MOTION[o.motion]
    trail = ", leaving a trail of its colour behind it" if o.trail else ""
    return f"{art} {size} {colour} {shape} starts at {where(o.x, o.y)} of the frame and {what}{trail}."


def detailed_caption(
    scene: Scene,
    seconds: float = 2.0,
    rng: np.random.Generator | None = None,
    p: float = 0.3,
) -> str:
    """Full sentences describing the clip. With `rng`, words are paraphrased with probability p."""
    bounds = shot_bounds(scene, seconds)
    intro = f"On a {scene.background} background"
    parts = []
    for k, shot in enumerate(scene.shots):
        dur = bounds[k][1] - bounds[k][0]
        n = len(shot.objects)
        lead = f"{intro}, there {'is' if n == 1 else 'are'} {_NUMBERS[n]}."
        if len(scene.shots) > 1:
            lead = (
                f"The clip has {len(scene.shots)} shots. In the first shot, on a {scene.background} "
                f"background, there {'is' if n == 1 else 'are'} {_NUMBERS[n]}."
                if k == 0
                else f"Then the scene cuts to the {_ORDINALS[k]} shot."
            )
        sentences = [lead] + [_object_sentence(o, shot.objects, rng, p) for o in shot.objects]
        sentences += _events(shot, scene.aspect, dur)
        if shot.camera:
            sentences.append(
                f"The camera pans {shot.camera}, so still objects drift {_opposite(shot.camera)}."
            )
        parts.append(" ".join(sentences))
    return " ".join(parts)


def _opposite(d: str) -> str:
    return {"left": "right", "right": "left"}[d]


def _object_phrase(
    o: Obj, rng: np.random.Generator | None, p: float, with_size: bool, with_motion: bool
) -> str:
    colour = paraphrase(o.colour, COLOUR_WORDS, rng, p) if rng else o.colour
    shape = paraphrase(o.shape, SHAPE_WORDS, rng, p) if rng else o.shape
    words = ["a"]
    if with_size:
        words.append(paraphrase(o.size, SIZE_WORDS, rng, p) if rng else o.size)
    words += [colour, shape]
    if with_motion and o.motion not in ("collides",):
        words.append(motion_phrase(o.motion, rng, p))
    if o.trail:
        words.append("leaving a trail")
    return " ".join(words)


def short_prompt(
    scene: Scene,
    rng: np.random.Generator | None = None,
    p: float = 0.0,
    seconds: float = 2.0,
) -> str:
    """The kind of prompt a person types. With rng: sizes and background are sometimes left
    out (when they are the default) and words paraphrased with probability p."""
    shots = []
    for shot in scene.shots:
        phrases, skip = [], set()
        for i, o in enumerate(shot.objects):
            if i in skip:
                continue
            with_size = o.size != spec.DEFAULT_SIZE or (rng is not None and rng.random() < 0.3)
            still_default = o.motion == "stays still" and rng is not None and rng.random() < 0.3
            phrase = _object_phrase(o, rng, p, with_size, not still_default)
            if o.motion == "collides" and o.partner is not None:
                b = shot.objects[o.partner]
                b_size = b.size != spec.DEFAULT_SIZE
                phrase += " collides with " + _object_phrase(b, rng, p, b_size, False)
                skip.add(o.partner)
            phrases.append(phrase)
        text = " and ".join(phrases)
        if shot.camera:
            text += f", the camera pans {shot.camera}"
        shots.append(text)
    text = join_shots(shots)
    if scene.background != spec.DEFAULT_BACKGROUND or (rng is not None and rng.random() < 0.3):
        bg = f" on a {scene.background} background"
        first_end = len(shots[0]) - (
            len(f", the camera pans {scene.shots[0].camera}") if scene.shots[0].camera else 0
        )
        text = text[:first_end] + bg + text[first_end:]
    return text
