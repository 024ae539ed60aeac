"""Flatland scenes and their physics.

A scene is data: a background and one or more shots, each shot a list of objects with a
motion and a start position. Physics is closed-form in seconds and in fractions of the
frame (x of the width, y of the height, y pointing down), so one scene renders the same
at any size, frame rate and duration. Positions are in world coordinates; a panning
camera shifts the screen over the world.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nanosora.world import spec


@dataclass
class Obj:
    colour: str
    shape: str
    size: str = spec.DEFAULT_SIZE
    motion: str = "stays still"  # one of spec.MOTIONS, or "collides" (with `partner`)
    x: float = 0.5  # start centre (the centroid for a triangle), fraction of the width
    y: float = 0.5  # fraction of the height
    dx: int = 1  # bounce direction signs
    dy: int = 1
    trail: bool = False
    partner: int | None = None  # index of the collision partner in the same shot

    @property
    def extent(self) -> float:
        return spec.SIZES[self.size]

    @property
    def moving(self) -> bool:
        return self.motion.startswith("moves") or self.motion in ("bounces", "falls", "collides")


@dataclass
class Shot:
    objects: list[Obj]
    camera: str | None = None  # "left" / "right": the camera pans
    seconds: float | None = None  # None: the shot lasts until the clip ends


@dataclass
class Scene:
    shots: list[Shot]
    background: str = spec.DEFAULT_BACKGROUND
    aspect: float = 1.0  # width / height the scene was laid out for

    @property
    def objects(self) -> list[Obj]:
        return self.shots[0].objects


@dataclass
class Track:
    """An object's state at each requested time: centre, extent scale and rotation."""

    x: np.ndarray
    y: np.ndarray
    scale: np.ndarray
    angle: np.ndarray  # degrees, clockwise on screen


# Half extents of each shape around its centre, in units of its extent: (left, right, top,
# bottom). The triangle's centre is its centroid, a third of its height above the base.
_TRI_TOP, _TRI_BOTTOM = 1 / math.sqrt(3), 1 / (2 * math.sqrt(3))


def half_extents(obj: Obj, aspect: float) -> tuple[float, float, float, float]:
    """Frame-fraction distances from the centre to the left, right, top and bottom edges,
    at the largest scale the object's motion reaches."""
    if obj.motion == "spins":
        r = {"circle": 0.5, "square": math.sqrt(0.5), "triangle": _TRI_TOP}[obj.shape]
        rel = (r, r, r, r)
    elif obj.shape == "triangle":
        rel = (0.5, 0.5, _TRI_TOP, _TRI_BOTTOM)
    else:
        rel = (0.5, 0.5, 0.5, 0.5)
    grow = spec.GROW_FACTOR if obj.motion == "grows" else 1.0
    ex = obj.extent * min(1.0, 1.0 / aspect) * grow  # extent as a fraction of the width
    ey = obj.extent * min(aspect, 1.0) * grow  # ... and of the height
    return rel[0] * ex, rel[1] * ex, rel[2] * ey, rel[3] * ey


def _fold(p0: float, v: float, t: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Position of a point moving at speed v and reflecting elastically between lo and hi."""
    span = hi - lo
    if span <= 0:
        return np.full_like(t, p0)
    u = np.mod(p0 - lo + v * t, 2 * span)
    return lo + np.where(u < span, u, 2 * span - u)


def _fall(y0: float, floor: float, t: np.ndarray) -> np.ndarray:
    """Free fall from rest at y0 with bounces on `floor` keeping FALL_RESTITUTION of the speed."""
    g, y = spec.FALL_ACCEL, np.full_like(t, floor)
    t1 = math.sqrt(max(2 * (floor - y0), 0.0) / g)
    before = t < t1
    y[before] = y0 + 0.5 * g * t[before] ** 2
    start, speed = t1, g * t1 * spec.FALL_RESTITUTION
    while speed > 1e-3:  # each hop: up at `speed`, back down, a little slower next time
        flight = 2 * speed / g
        hop = (t >= start) & (t < start + flight)
        s = t[hop] - start
        y[hop] = floor - speed * s + 0.5 * g * s**2
        start, speed = start + flight, speed * spec.FALL_RESTITUTION
    return y


def _collision(obj: Obj, other: Obj, t: np.ndarray, aspect: float) -> np.ndarray:
    """x of `obj` in a head-on elastic collision of equal masses: both approach at
    LINEAR_SPEED, touch, and swap velocities (so each reverses)."""
    v = spec.LINEAR_SPEED
    left, right = (obj, other) if obj.x <= other.x else (other, obj)
    gap = (right.x - half_extents(right, aspect)[0]) - (left.x + half_extents(left, aspect)[1])
    tc = max(gap, 0.0) / (2 * v)
    sign = 1.0 if obj is left else -1.0
    before = obj.x + sign * v * t
    after = obj.x + sign * v * tc - sign * v * (t - tc)
    return np.where(t < tc, before, after)


def object_track(obj: Obj, t: np.ndarray, aspect: float, objects: list[Obj] | None = None) -> Track:
    """The closed-form state of `obj` at times `t` (seconds from the start of its shot)."""
    t = np.asarray(t, dtype=np.float64)
    x, y = np.full_like(t, obj.x), np.full_like(t, obj.y)
    scale, angle = np.ones_like(t), np.zeros_like(t)
    m = obj.motion
    left, right, top, bottom = half_extents(obj, aspect)
    if m.startswith("moves"):
        d = m.split()[1]
        v = spec.LINEAR_SPEED
        if d in ("left", "right"):
            x = obj.x + (v if d == "right" else -v) * t
        else:
            y = obj.y + (v if d == "down" else -v) * t
    elif m == "bounces":
        x = _fold(obj.x, obj.dx * spec.BOUNCE_SPEED, t, left, 1 - right)
        y = _fold(obj.y, obj.dy * spec.BOUNCE_SPEED, t, top, 1 - bottom)
    elif m == "falls":
        y = _fall(obj.y, 1 - bottom, t)
    elif m == "spins":
        angle = spec.SPIN_DEG_PER_S * t
    elif m in ("grows", "shrinks"):
        target = spec.GROW_FACTOR if m == "grows" else spec.SHRINK_FACTOR
        scale = 1 + (target - 1) * np.clip(t / spec.SCALE_SECONDS, 0, 1)
    elif m == "collides":
        if objects is None or obj.partner is None:
            raise ValueError("a colliding object needs its partner")
        x = _collision(obj, objects[obj.partner], t, aspect)
    elif m != "stays still":
        raise ValueError(f"unknown motion {m!r}; known: {', '.join(spec.MOTIONS)}, collides")
    return Track(x=x, y=y, scale=scale, angle=angle)


def camera_offset(camera: str | None, t: np.ndarray) -> np.ndarray:
    """How far the camera has moved right, in widths, at times t (screen x = world x - offset)."""
    t = np.asarray(t, dtype=np.float64)
    if camera is None:
        return np.zeros_like(t)
    return (spec.CAMERA_SPEED if camera == "right" else -spec.CAMERA_SPEED) * t


def shot_bounds(scene: Scene, seconds: float) -> list[tuple[float, float]]:
    """(start, end) in clip seconds of each shot; the last open shot runs to `seconds`."""
    bounds, start = [], 0.0
    for i, shot in enumerate(scene.shots):
        last = i == len(scene.shots) - 1
        end = seconds if (last or shot.seconds is None) else min(start + shot.seconds, seconds)
        bounds.append((start, end))
        start = end
    return bounds


def in_view(
    obj: Obj,
    objects: list[Obj],
    camera: str | None,
    aspect: float,
    seconds: float,
    until: float = spec.IN_VIEW_SECONDS,
) -> bool:
    """True when the object stays fully inside the frame for its first `until` seconds."""
    t = np.linspace(0, min(seconds, until), 33)
    tr = object_track(obj, t, aspect, objects)
    left, right, top, bottom = half_extents(obj, aspect)
    sx = tr.x - camera_offset(camera, t)
    eps = 1e-6
    return bool(
        np.all(sx - left >= -eps)
        and np.all(sx + right <= 1 + eps)
        and np.all(tr.y - top >= -eps)
        and np.all(tr.y + bottom <= 1 + eps)
    )


@dataclass
class Exclusions:
    """Colour-shape-motion combinations a sampler must never produce (held out for eval)."""

    combos: set[tuple[str, str, str]] = field(default_factory=set)

    def allows(self, obj: Obj) -> bool:
        return (obj.colour, obj.shape, obj.motion) not in self.combos
