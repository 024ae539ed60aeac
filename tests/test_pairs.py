"""Minimal pairs: a scene and its colour-swapped twin, drawn side by side for the cache."""

import numpy as np

from nanosora.training import data
from nanosora.training.cache import DIT_BUCKETS
from nanosora.world import spec
from nanosora.world.render import render
from nanosora.world.sample import colour_swapped, sample_scene
from nanosora.world.scene import Exclusions, Obj, Scene, Shot


def two_objects():
    a = Obj("red", "square", "large", "moves right", x=0.3, y=0.3)
    b = Obj("blue", "circle", "small", "stays still", x=0.7, y=0.7)
    return Scene([Shot([a, b])], "black")


def test_every_object_takes_another_colour_and_keeps_the_rest():
    scene = sample_scene(np.random.default_rng(3), objects_p=(0.0, 0.0, 1.0))
    twin = colour_swapped(scene, np.random.default_rng(0))
    for shot, other in zip(scene.shots, twin.shots, strict=True):
        for o, t in zip(shot.objects, other.objects, strict=True):
            assert t.colour != o.colour
            assert (t.shape, t.size, t.motion, t.x, t.y) == (o.shape, o.size, o.motion, o.x, o.y)
    assert sorted(o.colour for o in twin.objects) == sorted(o.colour for o in scene.objects)
    assert [o.colour for o in scene.objects] != [o.colour for o in twin.objects]  # the original is untouched


def test_the_twin_draws_the_same_pixels_in_exchanged_colours():
    scene = two_objects()
    twin = colour_swapped(scene, np.random.default_rng(0))
    v, w = render(scene, 64, 64, 8, 1.0), render(twin, 64, 64, 8, 1.0)
    for colour, swapped in (("red", "blue"), ("blue", "red")):
        here = np.all(v == spec.COLOURS[colour], axis=-1)
        assert here.sum() > 0
        assert np.array_equal(here, np.all(w == spec.COLOURS[swapped], axis=-1))


def test_no_pair_for_one_object_or_a_held_out_combination():
    one = Scene([Shot([Obj("red", "square")])], "black")
    assert colour_swapped(one, np.random.default_rng(0)) is None
    held = Exclusions({("blue", "square", "moves right")})  # what the swap would make
    assert colour_swapped(two_objects(), np.random.default_rng(0), held) is None


def test_the_source_puts_each_twin_beside_its_scene():
    source = data.FlatlandSource(fps_choices=(8,), window=False, objects_p=(0.0, 1.0, 0.0), pairs_p=1.0)
    samples = data.draw(source, np.random.default_rng(0), DIT_BUCKETS[0], 4)
    assert len(samples) == 4
    for first, second in (samples[:2], samples[2:]):
        back = first.frames[0, 0, 0]  # the corner is background: objects start in view
        here = np.abs(first.frames.astype(int) - back).max(-1) > 24
        there = np.abs(second.frames.astype(int) - back).max(-1) > 24
        # the same layout in every frame (up to anti-aliased edges, whose blend with the
        # background depends on the colour)
        assert here.sum() > 0 and np.mean(here != there) < 0.002
        assert not np.array_equal(first.frames, second.frames)  # in other colours
        assert first.caption != second.caption


def test_without_pairs_the_draw_is_unchanged():
    source = data.FlatlandSource(fps_choices=(8,), window=False)
    b = DIT_BUCKETS[0]
    rng = np.random.default_rng(5)
    one_by_one = [source.sample(rng, b).caption for _ in range(5)]
    assert [s.caption for s in data.draw(source, np.random.default_rng(5), b, 5)] == one_by_one
