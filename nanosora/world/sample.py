"""Random Flatland scenes: the endless, exactly labelled training and test data.

Every random choice comes from one `numpy.random.Generator`, so a seed fixes a scene.
Placement is by rejection: draw a start inside the box the motion allows, keep it when
the object stays fully in view for its first IN_VIEW_SECONDS (camera pan included).
One rule covers every motion, camera and aspect ratio instead of a formula for each.
"""

from __future__ import annotations

import numpy as np

from nanosora.world import spec
from nanosora.world.scene import Exclusions, Obj, Scene, Shot, half_extents, in_view

_TRIES = 200


class PlacementError(ValueError):
    """No start position satisfies the motion, camera and frame shape."""


def _uniform_start(obj: Obj, aspect: float, rng: np.random.Generator) -> None:
    left, right, top, bottom = half_extents(obj, aspect)
    obj.x = float(rng.uniform(left, max(left, 1 - right)))
    y_hi = 1 - bottom
    if obj.motion == "falls":  # the spec: a falling object starts in the top quarter
        y_hi = max(top, min(y_hi, spec.FALL_START_MAX))
    obj.y = float(rng.uniform(top, max(top, y_hi)))
    obj.dx, obj.dy = (int(rng.choice([-1, 1])) for _ in range(2))


def apart(obj: Obj, others: list[Obj], aspect: float, margin: float = 0.02) -> bool:
    """True when obj's start box overlaps none of `others`: every object is fully visible
    in the first frame, and any overlap later comes from motion (a pass, a collision)."""
    l1, r1, t1, b1 = half_extents(obj, aspect)
    for o in others:
        if o is obj:
            continue
        l2, r2, t2, b2 = half_extents(o, aspect)
        if (
            obj.x - l1 < o.x + r2 + margin
            and o.x - l2 < obj.x + r1 + margin
            and obj.y - t1 < o.y + b2 + margin
            and o.y - t2 < obj.y + b1 + margin
        ):
            return False
    return True


def place(
    obj: Obj,
    objects: list[Obj],
    camera: str | None,
    aspect: float,
    seconds: float,
    rng: np.random.Generator,
    avoid: list[Obj] = (),
) -> None:
    """Give `obj` a random start consistent with its motion (in place), clear of `avoid`."""
    for _ in range(_TRIES):
        _uniform_start(obj, aspect, rng)
        if in_view(obj, objects, camera, aspect, seconds) and apart(obj, avoid, aspect):
            return
    raise PlacementError(
        f"cannot place a {obj.size} {obj.shape} that {obj.motion}"
        + (f" while the camera pans {camera}" if camera else "")
        + f" in a {aspect:.2g}:1 frame so that it stays in view"
    )


def place_collision(
    a: Obj,
    b: Obj,
    objects: list[Obj],
    camera: str | None,
    aspect: float,
    seconds: float,
    rng: np.random.Generator,
    avoid: list[Obj] = (),
) -> None:
    """Put a and b on one row, facing each other, touching 20-50% into the shot."""
    for _ in range(_TRIES):
        left, right = (a, b) if rng.random() < 0.5 else (b, a)
        _uniform_start(left, aspect, rng)
        tc = rng.uniform(0.2, 0.5) * min(seconds, 2.0)  # touch within the shot
        gap = half_extents(left, aspect)[1] + half_extents(right, aspect)[0]
        right.x, right.y = left.x + gap + 2 * spec.LINEAR_SPEED * tc, left.y
        until = tc + spec.COLLISION_AFTER  # in view until they have touched and parted
        if all(
            in_view(o, objects, camera, aspect, seconds, until) and apart(o, avoid, aspect) for o in (a, b)
        ):
            return
    raise PlacementError(f"cannot fit a {a.size} {a.shape} and a {b.size} {b.shape} collision")


def place_pass(
    mover: Obj,
    still: Obj,
    objects: list[Obj],
    camera: str | None,
    aspect: float,
    seconds: float,
    rng: np.random.Generator,
    avoid: list[Obj] = (),
) -> None:
    """Put `mover` on a horizontal path that starts clear of `still` and reaches it 5-30%
    into the shot, so that it passes in front of or behind it."""
    for _ in range(_TRIES):
        _uniform_start(still, aspect, rng)
        mover.y = still.y + rng.uniform(-0.05, 0.05)
        sign = 1 if mover.motion == "moves right" else -1
        reach = half_extents(mover, aspect)[1] + half_extents(still, aspect)[0] + 0.02
        mover.x = still.x - sign * (reach + spec.LINEAR_SPEED * rng.uniform(0.05, 0.3) * min(seconds, 2.0))
        ok = all(in_view(o, objects, camera, aspect, seconds) for o in (mover, still))
        if ok and all(apart(o, avoid, aspect) for o in (mover, still)):
            return
    raise PlacementError(f"cannot fit a {mover.shape} passing a {still.shape}")


def _random_motion(shape: str, rng: np.random.Generator) -> str:
    motions = [m for m in spec.MOTIONS if not (m == "spins" and shape == "circle")]
    return str(rng.choice(motions))


def _identities(n: int, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    colours = rng.choice(list(spec.COLOURS), size=n, replace=False)
    return [(str(c), str(rng.choice(spec.SHAPES)), str(rng.choice(list(spec.SIZES)))) for c in colours]


def _sample_shot(
    ids: list[tuple[str, str, str]],
    aspect: float,
    seconds: float,
    rng: np.random.Generator,
    exclude: Exclusions,
) -> Shot:
    camera = str(rng.choice(spec.CAMERA_PANS)) if rng.random() < 0.12 else None
    objs = []
    for colour, shape, size in ids:
        while True:
            o = Obj(colour, shape, size, _random_motion(shape, rng))
            if exclude.allows(o):
                break
        o.trail = o.moving and rng.random() < 0.15
        objs.append(o)
    kind = rng.random() if len(objs) >= 2 else 1.0
    if kind < 0.15:  # a head-on collision between the first two
        a, b = objs[0], objs[1]
        a.motion, a.partner, b.motion, b.partner = "collides", 1, "collides", 0
        place_collision(a, b, objs, camera, aspect, seconds, rng)
        for k, o in enumerate(objs[2:], 2):
            place(o, objs, camera, aspect, seconds, rng, avoid=objs[:k])
    elif kind < 0.3:  # one object passes in front of or behind a still one
        mover, still = objs[0], objs[1]
        mover.motion = str(rng.choice(["moves left", "moves right"]))
        still.motion, still.trail = "stays still", False
        if not (exclude.allows(mover) and exclude.allows(still)):
            return _sample_shot(ids, aspect, seconds, rng, exclude)
        place_pass(mover, still, objs, camera, aspect, seconds, rng)
        for k, o in enumerate(objs[2:], 2):
            place(o, objs, camera, aspect, seconds, rng, avoid=objs[:k])
        if rng.random() < 0.5:  # the z-order decides in front or behind
            objs[0], objs[1] = objs[1], objs[0]
    else:
        for k, o in enumerate(objs):
            place(o, objs, camera, aspect, seconds, rng, avoid=objs[:k])
    return Shot(objs, camera)


OBJECTS_P = (0.4, 0.35, 0.25)  # scenes of 1, 2 and 3 objects


def sample_scene(
    rng: np.random.Generator,
    aspect: float = 1.0,
    seconds: float = 2.0,
    exclude: Exclusions | None = None,
    max_shots: int = 3,
    objects_p: tuple[float, float, float] = OBJECTS_P,
) -> Scene:
    """A random scene: 1-3 objects of distinct colours, any motion, background and camera,
    sometimes a collision, a pass or several shots. `exclude` holds out colour-shape-motion
    combinations (for evaluation on compositions never seen in training). `objects_p`: how
    often a scene holds 1, 2 and 3 objects."""
    exclude = exclude or Exclusions()
    n = int(rng.choice([1, 2, 3], p=list(objects_p)))
    background = str(rng.choice(list(spec.BACKGROUNDS)))
    n_shots = 1 if max_shots == 1 or rng.random() < 0.9 else int(rng.integers(2, max_shots + 1))
    ids = _identities(n, rng)
    for _ in range(_TRIES):
        try:
            shots = []
            for _ in range(n_shots):
                shot = _sample_shot(ids, aspect, seconds / n_shots, rng, exclude)
                shot.seconds = seconds / n_shots
                shots.append(shot)
            shots[-1].seconds = None
            return Scene(shots, background, aspect)
        except PlacementError:
            continue  # rare: a large object in a narrow frame; draw again
    raise PlacementError("could not sample a scene that fits the frame")


def colour_swapped(scene: Scene, rng: np.random.Generator, exclude: Exclusions | None = None) -> Scene | None:
    """The same scene with its objects' colours exchanged (every object takes another's
    colour, in every shot): a minimal pair whose only difference is which colour belongs to
    which shape, size and motion, so that only binding lowers the loss on both (Okawa et al.,
    arXiv 2310.09336). None for a one-object scene, or when the swap would draw a held-out
    combination."""
    import copy

    colours = sorted({o.colour for shot in scene.shots for o in shot.objects})
    if len(colours) < 2:
        return None
    # a cyclic shift of a random order: no colour stays on its own object
    order = [colours[i] for i in rng.permutation(len(colours))]
    shift = {c: order[(k + 1) % len(order)] for k, c in enumerate(order)}
    twin = copy.deepcopy(scene)
    for shot in twin.shots:
        for o in shot.objects:
            o.colour = shift[o.colour]
    exclude = exclude or Exclusions()
    if not all(exclude.allows(o) for shot in twin.shots for o in shot.objects):
        return None
    return twin


def after_cut(scene: Scene, rng: np.random.Generator, aspect: float | None = None) -> Scene:
    """The same objects after a hard cut: each keeps its colour, shape and size (the world
    spec's shots) but stands still at a new random place, on the same background. A frame of
    it is what a reference frame shows the transformer (reference.py): who is in the world,
    not where they are or where they go."""
    aspect = scene.aspect if aspect is None else aspect
    for _ in range(_TRIES):
        objs = [Obj(o.colour, o.shape, o.size) for o in scene.objects]
        try:
            for k, o in enumerate(objs):
                place(o, objs, None, aspect, 0.0, rng, avoid=objs[:k])
        except PlacementError:
            continue
        return Scene([Shot(objs)], scene.background, aspect)
    raise PlacementError("could not place the scene's objects apart after a cut")
