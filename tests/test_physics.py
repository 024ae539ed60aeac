"""Flatland physics follows world-spec.md, motion by motion."""

import numpy as np
import pytest

from nanosora.world import spec
from nanosora.world.scene import Obj, camera_offset, half_extents, object_track

T = np.linspace(0, 2, 17)


def track(motion, shape="circle", **kw):
    o = Obj("red", shape, "medium", motion, **kw)
    return o, object_track(o, T, 1.0)


@pytest.mark.parametrize(
    "direction,axis,sign", [("right", "x", 1), ("left", "x", -1), ("down", "y", 1), ("up", "y", -1)]
)
def test_linear_motion_speed(direction, axis, sign):
    _, tr = track(f"moves {direction}", x=0.5, y=0.5)
    moved = getattr(tr, axis)[-1] - getattr(tr, axis)[0]
    other = tr.y if axis == "x" else tr.x
    assert moved == pytest.approx(sign * spec.LINEAR_SPEED * 2)
    assert np.ptp(other) == 0


def test_stays_still():
    _, tr = track("stays still", x=0.3, y=0.7)
    assert np.all(tr.x == 0.3) and np.all(tr.y == 0.7) and np.all(tr.scale == 1)


def test_bounce_reflects_and_stays_inside():
    o = Obj("red", "square", "large", "bounces", x=0.7, y=0.7, dx=1, dy=1)
    t = np.linspace(0, 10, 2001)
    tr = object_track(o, t, 1.0)
    left, right, top, bottom = half_extents(o, 1.0)
    assert tr.x.min() >= left - 1e-9 and tr.x.max() <= 1 - right + 1e-9
    assert tr.y.min() >= top - 1e-9 and tr.y.max() <= 1 - bottom + 1e-9
    v = np.diff(tr.x) / np.diff(t)
    assert np.mean(np.isclose(np.abs(v), spec.BOUNCE_SPEED, atol=0.01)) > 0.98
    assert (np.diff(np.sign(v)) != 0).sum() >= 3  # it reflects, again and again


def test_fall_accelerates_then_bounces_losing_speed():
    o = Obj("red", "circle", "medium", "falls", x=0.5, y=0.15)
    t = np.linspace(0, 3, 3001)
    y = object_track(o, t, 1.0).y
    floor = 1 - half_extents(o, 1.0)[3]
    assert y.max() == pytest.approx(floor, abs=1e-3)
    t1 = np.sqrt(2 * (floor - 0.15) / spec.FALL_ACCEL)
    assert y[np.searchsorted(t, t1 / 2)] == pytest.approx(
        0.15 + 0.5 * spec.FALL_ACCEL * (t1 / 2) ** 2, abs=1e-3
    )
    # after the first impact it rises at 70% of the impact speed
    i = np.searchsorted(t, t1) + 5
    v_up = -(y[i + 1] - y[i]) / (t[i + 1] - t[i])
    assert v_up == pytest.approx(spec.FALL_RESTITUTION * spec.FALL_ACCEL * t1, rel=0.05)


def test_spin_grow_shrink():
    _, tr = track("spins", shape="square")
    assert tr.angle[-1] == pytest.approx(spec.SPIN_DEG_PER_S * 2)
    _, tr = track("grows")
    assert tr.scale[0] == 1 and tr.scale[-1] == pytest.approx(2.0)
    _, tr = track("shrinks")
    assert tr.scale[8] == pytest.approx(0.75) and tr.scale[-1] == pytest.approx(0.5)


def test_collision_is_elastic_and_head_on():
    a = Obj("red", "circle", "medium", "collides", x=0.2, y=0.5, partner=1)
    b = Obj("blue", "circle", "medium", "collides", x=0.8, y=0.5, partner=0)
    t = np.linspace(0, 2, 2001)
    xa, xb = object_track(a, t, 1.0, [a, b]).x, object_track(b, t, 1.0, [a, b]).x
    gap = xb - xa
    assert gap.min() == pytest.approx(0.25, abs=1e-3)  # they touch (radii 0.125 each), never overlap
    k = gap.argmin()
    assert xa[k + 10] < xa[k] and xb[k + 10] > xb[k]  # and both reverse


def test_camera_pan():
    assert camera_offset("right", np.array([2.0]))[0] == pytest.approx(0.4)
    assert camera_offset("left", np.array([1.0]))[0] == pytest.approx(-0.2)
    assert camera_offset(None, np.array([1.0]))[0] == 0


def test_scene_object_counts_follow_objects_p():
    import numpy as np

    from nanosora.training.data import make_source
    from nanosora.world.sample import sample_scene

    rng = np.random.default_rng(0)
    assert {len(sample_scene(rng, objects_p=(0, 0, 1)).objects) for _ in range(20)} == {3}
    assert {len(sample_scene(rng, objects_p=(1, 0, 0)).objects) for _ in range(20)} == {1}
    counts = np.bincount([len(sample_scene(rng).objects) for _ in range(300)], minlength=4)
    assert counts[1] > counts[2] > counts[3] > 0  # the default: 40%, 35%, 25%
    src = make_source("flatland", for_text=True, objects_p=(0, 1, 0))
    assert src.objects_p == (0, 1, 0)
