"""The renderer: colours, shapes, sizes, backgrounds, trails, aspect ratios, determinism."""

import numpy as np
import pytest

from nanosora.world import spec
from nanosora.world.parse import scene_from_prompt
from nanosora.world.render import render, render_chunks
from nanosora.world.sample import sample_scene
from nanosora.world.scene import Obj, Scene, Shot


def one(colour="red", shape="circle", size="medium", motion="stays still", background="black", **kw):
    return Scene([Shot([Obj(colour, shape, size, motion, **kw)])], background)


@pytest.mark.parametrize("colour", list(spec.COLOURS))
@pytest.mark.parametrize("background", list(spec.BACKGROUNDS))
def test_colours_on_every_background(colour, background):
    v = render(one(colour, background=background), 64, 64, 8, 0.5)
    assert tuple(v[0, 32, 32]) == spec.COLOURS[colour]
    assert tuple(v[0, 1, 1]) == spec.BACKGROUNDS[background]


@pytest.mark.parametrize("shape,fill", [("circle", 0.785), ("square", 1.0), ("triangle", 0.5)])
@pytest.mark.parametrize("size", list(spec.SIZES))
def test_shapes_and_sizes(shape, fill, size):
    v = render(one(shape=shape, size=size), 128, 128, 8, 0.5)[0].astype(float)
    cover = (v[..., 0] - 0) / 230.0  # red channel on black is coverage * 230
    extent = spec.SIZES[size] * 128
    ideal_area = {"circle": np.pi / 4, "square": 1.0, "triangle": np.sqrt(3) / 4}[shape] * extent**2
    assert cover.sum() == pytest.approx(ideal_area, rel=0.03)
    w, h = cover.max(0).sum(), cover.max(1).sum()  # soft extents: exact under anti-aliasing
    assert w == pytest.approx(extent, abs=1.0)
    assert cover.sum() / (w * h) == pytest.approx(fill, abs=0.05)


def test_edges_are_anti_aliased():
    v = render(one(x=0.5013, y=0.5), 64, 64, 8, 0.5)[0, :, :, 0]
    levels = np.unique(v)
    assert len(levels) > 5  # intermediate coverage on the edge, not a hard 0/230 mask


@pytest.mark.parametrize("w,h", [(32, 32), (64, 64), (128, 64), (64, 128), (512, 256), (48, 96)])
def test_every_aspect_ratio_and_size(w, h, rng):
    scene = sample_scene(rng, aspect=w / h, seconds=1.0)
    v = render(scene, w, h, 8, 1.0)
    assert v.shape == (9, h, w, 3) and v.dtype == np.uint8


def test_same_scene_same_look_at_any_resolution():
    scene = one(motion="moves right", x=0.3, y=0.5)
    small = render(scene, 64, 64, 8, 1.0).astype(float)
    big = render(scene, 128, 128, 8, 1.0).astype(float)
    down = big.reshape(9, 64, 2, 64, 2, 3).mean((2, 4))
    assert np.abs(down - small).mean() < 2.0


def test_deterministic_by_seed():
    a = render(scene_from_prompt("a red circle bounces and a blue square falls", np.random.default_rng(7)))
    b = render(scene_from_prompt("a red circle bounces and a blue square falls", np.random.default_rng(7)))
    c = render(scene_from_prompt("a red circle bounces and a blue square falls", np.random.default_rng(8)))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_chunks_equal_whole_clip_with_trail_and_pan():
    scene = one(motion="bounces", trail=True, x=0.5, y=0.5)
    scene.shots[0].camera = "left"
    whole = np.concatenate(list(render_chunks(scene, 64, 64, 8, 6.0, chunk=1000)))
    chunked = np.concatenate(list(render_chunks(scene, 64, 64, 8, 6.0, chunk=7)))
    assert np.array_equal(whole, chunked)


def test_trail_persists_at_forty_percent():
    v = render(one(motion="moves right", x=0.2, y=0.5, trail=True), 64, 64, 8, 2.0)
    start = v[-1, 32, int(0.2 * 64)]  # where the object began: now only its trail
    assert tuple(start) == tuple(round(0.4 * c) for c in spec.COLOURS["red"])


def test_z_order_later_objects_in_front():
    objs = [
        Obj("red", "square", "large", x=0.5, y=0.5),
        Obj("blue", "circle", "small", x=0.5, y=0.5),
    ]
    v = render(Scene([Shot(objs)]), 64, 64, 8, 0.5)
    assert tuple(v[0, 32, 32]) == spec.COLOURS["blue"]


def test_multi_shot_cut():
    shots = [
        Shot([Obj("red", "circle", x=0.25, y=0.5)], seconds=1.0),
        Shot([Obj("red", "circle", x=0.75, y=0.5)]),
    ]
    v = render(Scene(shots), 64, 64, 8, 2.0)
    assert tuple(v[7, 32, 16]) == spec.COLOURS["red"] and tuple(v[8, 32, 48]) == spec.COLOURS["red"]
    assert tuple(v[8, 32, 16]) == (0, 0, 0)


@pytest.mark.parametrize("w,h,fps", [(50, 64, 8), (64, 16, 8), (64, 528, 8), (64, 64, 0), (64, 64, 31)])
def test_bad_sizes_and_rates_are_refused(w, h, fps):
    with pytest.raises(ValueError, match="multiples of 16|fps"):
        render(one(), w, h, fps, 1.0)


def test_bad_duration_is_refused():
    with pytest.raises(ValueError, match="positive duration"):
        render(one(), 64, 64, 8, 0)
