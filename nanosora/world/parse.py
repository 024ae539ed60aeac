"""From a short prompt (the grammar of docs/world.md, plus the paraphrases in language.py) to a
description of a scene, and from that to a concrete random scene.

    prompt   := object ("and" object)* ["on a" background "background"] ["," camera]
    object   := "a" [size] colour shape [motion] ["leaving a trail"]
               | object ("collides with" | "passes behind" | "passes in front of") object

Shots are separated by "then cut to". The parse drives `world render`, prompt expansion
and the scorer, which all need to know what a prompt asks for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from nanosora.world import spec
from nanosora.world.language import normalise
from nanosora.world.sample import place, place_collision, place_pass
from nanosora.world.scene import Obj, Scene, Shot

EXAMPLE = "a red circle moves right and a small blue square bounces on a white background"


class PromptError(ValueError):
    """The prompt is not one the Flatland parser understands; the message says what is."""


@dataclass
class ObjectSpec:
    colour: str
    shape: str
    size: str | None = None  # None: not stated (the scene uses medium; the scorer skips size)
    motion: str | None = None  # None: not stated (stays still, or bounces if it leaves a trail)
    trail: bool = False
    partner: int | None = None  # collision partner
    passes: int | None = None  # index of the object this one passes in front of or behind

    @property
    def resolved_motion(self) -> str:
        if self.motion:
            return self.motion
        return "bounces" if self.trail else "stays still"

    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass
class ShotSpec:
    objects: list[ObjectSpec]
    camera: str | None = None


@dataclass
class PromptSpec:
    shots: list[ShotSpec]
    background: str | None = None
    text: str = ""

    @property
    def objects(self) -> list[ObjectSpec]:
        return self.shots[0].objects


_COLOURS = "|".join(spec.COLOURS)
_SHAPES = "|".join(spec.SHAPES)
_SIZES = "|".join(spec.SIZES)
_MOTIONS = "|".join(re.escape(m) for m in spec.MOTIONS)
_OBJECT = re.compile(
    rf"^(?:a|an|the|one)\s+(?:({_SIZES})\s+)?({_COLOURS})\s+(?:({_SIZES})\s+)?({_SHAPES})"
    rf"(?:\s*,?\s+(?:that|which|who)?\s*({_MOTIONS}))?\s*$"
)
_RELATION = re.compile(
    r",?\s+(?:and\s+)?(collides with|passes behind|passes in front of)\s+(?=(?:a|an|the)\s)"
)
_CAMERA = re.compile(
    r",?\s*(?:and|while|as)?\s*(?:the\s+)?camera\s+(?:pans|panning|moves|moving|sweeps|tracks)"
    r"\s+(?:to\s+the\s+)?(left|right)\b"
)
_BACKGROUND = re.compile(
    rf",?\s*(?:on|against|over|in front of)\s+(?:a|an|the)\s+({'|'.join(spec.BACKGROUNDS)})"
    r"\s+(?:background|backdrop)\b"
)
_CUT = re.compile(r",?\s*(?:and\s+)?(?:then\s+)?(?:the\s+scene\s+)?cuts?\s+to\s*:?\s*")
_TRAIL = re.compile(r",?\s*(?:and\s+)?(?:leaves|leaving|with)\s+a\s+trail\b")


def _error(text: str, why: str) -> PromptError:
    return PromptError(
        f"cannot read the prompt {text!r}: {why}. Flatland prompts look like {EXAMPLE!r}: "
        f"1 to {spec.MAX_OBJECTS} objects joined by 'and', each 'a [size] colour shape [motion]'; "
        f"sizes: {', '.join(spec.SIZES)}; colours: {', '.join(spec.COLOURS)}; shapes: "
        f"{', '.join(spec.SHAPES)}; motions: {', '.join(spec.MOTIONS)}, 'leaves a trail', "
        f"'collides with', 'passes behind'; backgrounds: 'on a black|gray|white background'; "
        f"camera: ', the camera pans left|right'; shots: 'then cut to ...'"
    )


def _parse_object(text: str, original: str) -> ObjectSpec:
    trail = bool(_TRAIL.search(text))
    text = _TRAIL.sub("", text).strip(" ,")
    m = _OBJECT.match(text)
    if not m:
        raise _error(original, f"{text!r} is not 'a [size] colour shape [motion]'")
    size = m.group(1) or m.group(3)
    return ObjectSpec(colour=m.group(2), shape=m.group(4), size=size, motion=m.group(5), trail=trail)


def _parse_shot(text: str, original: str) -> ShotSpec:
    camera = None
    cm = _CAMERA.search(text)
    if cm:
        camera, text = cm.group(1), _CAMERA.sub("", text)
    text = text.strip(" ,")
    if text.startswith("there is ") or text.startswith("there are "):
        text = text.split(" ", 2)[2]
    # Split into objects at "and a ...", ", a ..." and the relation words.
    parts = re.split(r"\s*(?:,\s*and|,|\band)\s+(?=(?:a|an|the|one)\s)", text)
    objects: list[ObjectSpec] = []
    for part in parts:
        pieces = _RELATION.split(part)
        first = _parse_object(pieces[0], original)
        objects.append(first)
        for rel, other_text in zip(pieces[1::2], pieces[2::2], strict=True):
            other = _parse_object(other_text, original)
            i, j = len(objects) - 1, len(objects)
            if rel == "collides with":
                objects[i].motion, other.motion = "collides", "collides"
                objects[i].partner, other.partner = j, i
                objects.append(other)
            else:  # the mover crosses a still object; the z-order says in front or behind
                if objects[i].motion not in ("moves left", "moves right"):
                    objects[i].motion = objects[i].motion or "moves right"
                    if objects[i].motion not in ("moves left", "moves right"):
                        raise _error(original, "only an object that moves left or right can pass another")
                other.motion = other.motion or "stays still"
                objects[i].passes, other.passes = j, i
                objects.append(other)
                if rel == "passes in front of":  # later objects are drawn on top
                    objects[i], objects[j] = objects[j], objects[i]
                    objects[i].passes, objects[j].passes = j, i
    if not 1 <= len(objects) <= spec.MAX_OBJECTS:
        raise _error(original, f"it names {len(objects)} objects; a scene holds 1 to {spec.MAX_OBJECTS}")
    colours = [o.colour for o in objects]
    if len(set(colours)) != len(colours):
        raise _error(original, "two objects share a colour; each object needs its own colour")
    return ShotSpec(objects, camera)


def parse_prompt(text: str) -> PromptSpec:
    """Parse a short Flatland prompt. Raises PromptError saying what is accepted."""
    if not isinstance(text, str) or not text.strip():
        raise _error(str(text), "it is empty")
    norm = normalise(text)
    background = None
    bm = _BACKGROUND.search(norm)
    if bm:
        background, norm = bm.group(1), _BACKGROUND.sub("", norm)
    shots = [_parse_shot(part, text) for part in _CUT.split(norm) if part.strip(" ,")]
    if not shots:
        raise _error(text, "it names no object")
    first = {o.colour: o for o in shots[0].objects}
    sizes: dict[str, str] = {}
    for shot in shots:
        for o in shot.objects:
            if o.colour in first and o.shape != first[o.colour].shape:
                raise _error(text, f"the {o.colour} object changes shape across a cut")
            # an object keeps its size across a cut unless the later shot states another
            # (docs/world.md, shots), so a later shot's unstated size is the earlier one
            o.size = o.size or sizes.get(o.colour)
            if o.size:
                sizes.setdefault(o.colour, o.size)
    return PromptSpec(shots, background, text)


def scene_from_prompt(
    prompt: str | PromptSpec,
    rng: np.random.Generator,
    aspect: float = 1.0,
    seconds: float = 2.0,
) -> Scene:
    """A concrete scene for a prompt: what it leaves open (size, position, bounce direction)
    is drawn from `rng`, as the spec says."""
    ps = parse_prompt(prompt) if isinstance(prompt, str) else prompt
    per_shot = seconds / len(ps.shots)
    shots = []
    sizes: dict[str, str] = {}
    for shot_spec in ps.shots:
        objs = []
        for o in shot_spec.objects:
            size = o.size or sizes.get(o.colour) or spec.DEFAULT_SIZE
            sizes.setdefault(o.colour, size)
            objs.append(Obj(o.colour, o.shape, size, o.resolved_motion, trail=o.trail, partner=o.partner))
        cam = shot_spec.camera
        placed: list[Obj] = []
        for i, o in enumerate(shot_spec.objects):
            if objs[i] in placed:
                continue
            if o.partner is not None:
                pair = [objs[i], objs[o.partner]]
                place_collision(*pair, objs, cam, aspect, per_shot, rng, avoid=placed)
            elif o.passes is not None:
                j = o.passes
                mover, still = (i, j) if objs[i].motion.startswith("moves") else (j, i)
                pair = [objs[mover], objs[still]]
                place_pass(*pair, objs, cam, aspect, per_shot, rng, avoid=placed)
            else:
                pair = [objs[i]]
                place(objs[i], objs, cam, aspect, per_shot, rng, avoid=placed)
            placed += pair
        shots.append(Shot(objs, cam, per_shot))
    shots[-1].seconds = None
    return Scene(shots, ps.background or spec.DEFAULT_BACKGROUND, aspect)
