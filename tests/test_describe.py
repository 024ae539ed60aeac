"""Given frames are re-captioned: what rendered Flatland frames show is read back from their
pixels, and a prompt about them is merged into a caption about those objects."""

from __future__ import annotations

import numpy as np
import pytest

from nanosora.generation import expand
from nanosora.model import load
from nanosora.world import describe
from nanosora.world.parse import scene_from_prompt
from nanosora.world.render import render
from tests.helpers import make_tiny_model


def clip(prompt, seed=0, seconds=2.0, w=64, h=64):
    return render(scene_from_prompt(prompt, np.random.default_rng(seed), w / h, seconds), w, h, 8, seconds)


@pytest.mark.parametrize(
    "prompt,want",
    [
        ("a large yellow circle stays still", ("yellow", "circle", "large", None)),
        (
            "a small red triangle moves right on a white background",
            ("red", "triangle", "small", "moves right"),
        ),
        ("a blue square moves up on a gray background", ("blue", "square", "medium", "moves up")),
        ("a pink square bounces", ("pink", "square", "medium", "bounces")),
        ("a green circle moves left", ("green", "circle", "medium", "moves left")),
    ],
)
def test_read_names_what_a_clip_shows(prompt, want):
    frames = clip(prompt)
    seen = describe.read(frames, 8)
    background = "white" if "white" in prompt else "gray" if "gray" in prompt else "black"
    assert seen.background == background
    (o,) = seen.objects
    assert (o.colour, o.shape, o.size, o.motion) == want
    # one frame alone shows no motion; its place is where the object is
    (first,) = describe.read(frames[:1], 8).objects
    assert first.motion is None and (first.colour, first.shape, first.size) == want[:3]


def test_read_gives_places_and_every_object():
    scene = scene_from_prompt("a red circle and a blue square", np.random.default_rng(2), 1.0, 2.0)
    frames = render(scene, 64, 64, 8, 2.0)
    seen = describe.read(frames[:1], 8)
    assert sorted(o.colour for o in seen.objects) == ["blue", "red"]
    for obj in scene.shots[0].objects:
        (o,) = seen.find(obj.colour)
        assert abs(o.x - obj.x) < 0.05 and abs(o.y - obj.y) < 0.05


def test_read_from_the_start_reverses_the_motion():
    frames = clip("a red circle moves right")
    assert describe.read(frames, 8).objects[0].motion == "moves right"
    # read from its start, backwards in time (what came before it runs the same way)
    assert describe.read(frames, 8, end=False).objects[0].motion == "moves right"
    assert describe.read(frames[::-1].copy(), 8).objects[0].motion == "moves left"


ONE = describe.Seen("black", (describe.SeenObject("yellow", "circle", "large", 0.2, 0.5),))
TWO = describe.Seen(
    "white",
    (
        describe.SeenObject("yellow", "circle", "large", 0.2, 0.5),
        describe.SeenObject("blue", "square", "small", 0.8, 0.2, "moves left"),
    ),
)


@pytest.mark.parametrize(
    "seen,prompt,merged",
    [
        (ONE, "it moves right", "a large yellow circle moves right"),
        (ONE, "moves right", "a large yellow circle moves right"),
        (ONE, "The ball keeps falling.", "a large yellow circle falls"),
        (ONE, "the yellow one continues to move up", "a large yellow circle moves up"),
        (ONE, "the small circle spins", "a small yellow circle spins"),
        (TWO, "the circle moves right", "a large yellow circle moves right"),
        (
            TWO,
            "the circle bounces and the square falls",
            "a large yellow circle bounces and a small blue square falls",
        ),
        (TWO, "a red triangle moves up", "a red triangle moves up"),
        (TWO, "the square keeps going", "a small blue square moves left"),
        # what cannot be read so: an ambiguous "it", a reference to nothing, unknown words
        (TWO, "it moves right", None),
        (TWO, "moves right", None),
        (ONE, "the square moves right", None),
        (ONE, "it dances", None),
        (ONE, "it keeps going", None),  # a still object has no motion to keep
        (describe.Seen("black", ()), "it moves right", None),
    ],
)
def test_merge_resolves_references_to_the_frames(seen, prompt, merged):
    assert describe.merge(prompt, seen) == merged


def test_scene_keeps_unnamed_objects_where_they_were_seen():
    scene = describe.scene_for("the circle moves right", TWO, np.random.default_rng(0), 1.0, 2.0)
    assert scene.background == "white"  # the prompt named none: the frames'
    objs = {o.colour: o for o in scene.shots[0].objects}
    assert objs["yellow"].motion == "moves right" and (objs["yellow"].x, objs["yellow"].y) == (0.2, 0.5)
    assert objs["blue"].motion == "moves left" and objs["blue"].size == "small"
    assert (objs["blue"].x, objs["blue"].y) == (0.8, 0.2)
    rng = np.random.default_rng(0)
    unplaced = describe.scene_for("the circle moves right", TWO, rng, 1.0, 2.0, places=False)
    assert unplaced.shots[0].objects[0].x != 0.2


def test_expand_given_captions_the_image_and_falls_back():
    image = clip("a large yellow circle stays still")[:1]
    cap = expand.expand_given("it moves right", image, 8, 2.0, 1.0, 0)
    assert "A large yellow circle starts at" in cap and "to the right" in cap
    # an unreadable prompt is expanded as it would be without frames
    with pytest.warns(expand.ExpansionWarning, match="used as it is"):
        assert expand.expand_given("it dances", image, 8, 2.0, 1.0, 0) == "it dances"
    # a model trained on other videos gets the prompt as it is
    assert expand.expand_given("it moves right", image, 8, 2.0, 1.0, 0, flatland=False) == "it moves right"


def test_generation_records_the_merged_caption(tmp_path):
    model = load(make_tiny_model(tmp_path))
    fast = dict(steps=1, width=32, height=32, watermark=False)
    image = clip("a small green square stays still", w=32, h=32)[0]
    v = model.generate("it moves left", image=image, seconds=1, **fast)
    cap = v.metadata["caption"]
    assert "A small green square starts at" in cap and "to the left" in cap
    given = clip("a red circle moves right", w=32, h=32)
    ext = model.generate("it keeps going", video=given, extend="forward", seconds=1, **fast)
    cap = ext.metadata["caption"]
    assert "A medium red circle starts at" in cap and "to the right" in cap
    ext = model.generate("the circle falls", video=given, extend="forward", seconds=1, **fast)
    assert "A medium red circle starts at" in ext.metadata["caption"] and "falls" in ext.metadata["caption"]
    # an edit's prompt says what to change: not merged with the video
    edit = model.generate("the circle falls", video=given, strength=0.5, **fast)
    assert edit.metadata["caption"] == "the circle falls"
