"""What given frames show, in the world's words, merged with what the user says happens.

Sora re-captions the images and videos it is given. Here the scorer's pixel measurements
name the background and each object (colour, shape class, size class, place, and from a clip
its direction of travel), and a prompt about those frames ("it moves right", "the circle
keeps falling") is rewritten into a Flatland scene about them: "it" and "the circle" become
the yellow circle the image shows, and objects the prompt leaves out stay in the scene.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np

from nanosora.world import spec
from nanosora.world.language import normalise
from nanosora.world.measure import estimate_background, measure
from nanosora.world.parse import ObjectSpec, PromptError, parse_prompt, scene_from_prompt
from nanosora.world.scene import Scene

# a clip's object counts as moving above this speed (frame fractions a second): well under
# the world's linear speed, well over the jitter of a still object's measured centre
_MOVING = 0.4 * spec.LINEAR_SPEED


@dataclass(frozen=True)
class SeenObject:
    colour: str
    shape: str
    size: str
    x: float  # centre in the frame described, as fractions of width and height
    y: float
    motion: str | None = None  # "moves left|right|up|down" or "bounces" when a clip shows it


@dataclass(frozen=True)
class Seen:
    background: str
    objects: tuple[SeenObject, ...]

    def find(self, colour: str | None = None, shape: str | None = None) -> list[SeenObject]:
        return [
            o
            for o in self.objects
            if (colour is None or o.colour == colour) and (shape is None or o.shape == shape)
        ]


def _nearest(value: float, table: dict[str, float], log: bool = False) -> str:
    f = np.log if log else (lambda v: v)
    return min(table, key=lambda k: abs(f(value) - f(table[k])))


def read(frames: np.ndarray, fps: float, end: bool = True) -> Seen:
    """What the frames (T, H, W, 3 uint8) show at their end (`end`) or their start: the
    objects in that frame, and from up to a second of frames next to it how each moves."""
    h, w = frames.shape[1:3]
    background, bg = estimate_background(frames)
    n = max(1, min(len(frames), int(round(fps))))
    clip = frames[-n:] if end else frames[:n][::-1]
    objects = []
    for colour, st in measure(clip, bg, set()).items():
        # the object as it is in the frame described: present there, measured over the frames
        # it is present in near it
        if not st.present[-1]:
            continue
        near = st.present
        fill = float(np.median(st.area[near] / np.maximum(st.width[near] * st.height[near], 1e-6)))
        shape = _nearest(fill, spec.FILL_RATIOS)
        # a size is a circle's diameter, a square's side and a triangle's width
        extent = st.width[near] if shape == "triangle" else np.maximum(st.width[near], st.height[near])
        size = _nearest(float(np.median(extent)) / min(h, w), spec.SIZES, log=True)
        motion = None
        idx = np.flatnonzero(near)
        steps = np.flatnonzero(np.diff(idx) == 1)  # consecutive frames the object is in
        if len(steps) >= 2:
            # the median step, not first to last: one bounce off an edge does not cancel it
            vx = float(np.median(np.diff(st.cx[idx])[steps])) * fps / w
            vy = float(np.median(np.diff(st.cy[idx])[steps])) * fps / h
            if not end:  # read backwards from the start: the motion runs the other way
                vx, vy = -vx, -vy
            if abs(vx) > _MOVING and abs(vy) > _MOVING:
                motion = "bounces"
            elif abs(vx) > _MOVING:
                motion = "moves right" if vx > 0 else "moves left"
            elif abs(vy) > _MOVING:
                motion = "moves down" if vy > 0 else "moves up"
        objects.append(SeenObject(colour, shape, size, float(st.cx[-1] / w), float(st.cy[-1] / h), motion))
    return Seen(background, tuple(objects))


_SIZES, _COLOURS, _SHAPES = ("|".join(d) for d in (spec.SIZES, spec.COLOURS, spec.SHAPES))
# "the circle", "that small yellow one", "the object": a reference to something in the frames
_REFERENCE = re.compile(
    rf"\b(?:the|this|that)\s+(?:({_SIZES})\s+)?(?:({_COLOURS})\s+)?({_SHAPES}|object|shape|one)\b"
)
_PRONOUN = re.compile(r"\b(?:it|itself)\b")
# the words that say "as before" about given frames, which the merge reads (so a prompt's
# words check knows them: vocabulary.parser_words)
CONTINUATION_WORDS = ("it", "itself", "keeps", "continues", "carries", "goes", "going", "moving", "on", "to")
# "keeps falling", "continues to move right", "goes on spinning": what it already does
_CONTINUES = re.compile(r"\b(?:keeps|continues|carries on|goes on)\s+(?:on\s+)?(?:to\s+)?")
_BASE_VERB = re.compile(r"\b(move|fall|spin|bounce|grow|shrink|stay)\b")
# "it keeps going", "the circle carries on": whatever it was seen doing
_GOES_ON = re.compile(r"\b(?:keeps|continues|carries on|goes on)(?:\s+(?:going|moving|on))?\s*$")
_SAME = "SAME-MOTION"  # upper case: no normalised prompt holds it


def _phrase(o: SeenObject, size: str | None = None) -> str:
    return f"a {size or o.size} {o.colour} {o.shape}"


def merge(prompt: str, seen: Seen) -> str | None:
    """The prompt as a Flatland prompt about the seen objects: each reference to one of them
    ("it", "the circle") names it in full; a prompt that names no object is about the one
    object seen. None when it cannot be read so (nothing seen, an ambiguous reference, or
    words the parser does not read)."""
    if not seen.objects:
        return None
    text = normalise(prompt)
    text = _GOES_ON.sub(_SAME, text)
    if _CONTINUES.search(text):  # "continues to move left": the verb after it as the parser reads it
        text = _BASE_VERB.sub(r"\1s", _CONTINUES.sub("", text))

    def resolve(m: re.Match) -> str:
        size, colour, shape = m.group(1), m.group(2), m.group(3)
        found = seen.find(colour, shape if shape in spec.SHAPES else None)
        if len(found) != 1:
            raise LookupError(m.group(0))
        named.append(found[0])
        return _phrase(found[0], size)

    named: list[SeenObject] = []

    try:
        text = _REFERENCE.sub(resolve, text)
        if _PRONOUN.search(text):
            if len(seen.objects) != 1:
                return None
            text = _PRONOUN.sub(_phrase(seen.objects[0]), text)
            named.append(seen.objects[0])
    except LookupError:
        return None
    if not re.match(r"(?:a|an|one|there)\b", text):
        if len(seen.objects) != 1:
            return None
        text = f"{_phrase(seen.objects[0])} {text}"
        named.append(seen.objects[0])
    if _SAME in text:
        if len(set(named)) != 1 or named[0].motion is None:
            return None
        text = text.replace(_SAME, named[0].motion)
    try:
        parse_prompt(text)
    except PromptError:
        return None
    return text


def scene_for(
    prompt: str, seen: Seen, rng: np.random.Generator, aspect: float, seconds: float, places: bool = True
) -> Scene | None:
    """The scene of merge(prompt, seen), with the objects the prompt leaves out as they were
    seen (up to the world's three) and, with `places`, every seen object starting where it
    is. None where merge gives None or the prompt has shots."""
    text = merge(prompt, seen)
    if text is None:
        return None
    ps = parse_prompt(text)
    if len(ps.shots) != 1:
        return None
    objs = ps.objects
    named = {o.colour for o in objs}
    for o in seen.objects:
        if o.colour not in named and len(objs) < spec.MAX_OBJECTS:
            objs.append(ObjectSpec(colour=o.colour, shape=o.shape, size=o.size, motion=o.motion))
    ps = dataclasses.replace(ps, background=ps.background or seen.background)
    scene = scene_from_prompt(ps, rng, aspect=aspect, seconds=seconds)
    if places:
        where = {o.colour: o for o in seen.objects}
        for obj in scene.shots[0].objects:
            if obj.colour in where:
                obj.x, obj.y = float(where[obj.colour].x), float(where[obj.colour].y)
    return scene
