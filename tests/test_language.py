"""Captions, short prompts, paraphrases and the parser agree with each other."""

import pytest

from nanosora.world import spec
from nanosora.world.caption import detailed_caption, short_prompt
from nanosora.world.parse import PromptError, parse_prompt, scene_from_prompt
from nanosora.world.sample import sample_scene
from nanosora.world.scene import Exclusions


def test_parse_the_spec_examples():
    p = parse_prompt("a small blue square bounces on a white background")
    assert p.background == "white"
    (o,) = p.objects
    assert (o.size, o.colour, o.shape, o.motion) == ("small", "blue", "square", "bounces")
    p = parse_prompt("a green triangle falls and a yellow circle stays still")
    assert [(o.colour, o.shape, o.motion) for o in p.objects] == [
        ("green", "triangle", "falls"),
        ("yellow", "circle", "stays still"),
    ]


def test_paraphrases_parse_to_the_same_scene():
    for text in [
        "a crimson ball rolling to the right",
        "A scarlet disc, moving right.",
        "a red dot slides right",
    ]:
        (o,) = parse_prompt(text).objects
        assert (o.colour, o.shape, o.motion) == ("red", "circle", "moves right"), text


def test_camera_trail_relations_and_shots():
    p = parse_prompt("a red circle moves left leaving a trail, the camera pans right")
    assert p.objects[0].trail and p.shots[0].camera == "right"
    p = parse_prompt("a red circle collides with a blue square")
    assert [o.motion for o in p.objects] == ["collides", "collides"]
    p = parse_prompt("a red circle moves right and passes behind a large blue square")
    assert [o.colour for o in p.objects] == ["red", "blue"]  # the mover is drawn first: behind
    p = parse_prompt("a red circle moves right and passes in front of a blue square")
    assert [o.colour for o in p.objects] == ["blue", "red"]
    p = parse_prompt("a red circle falls, then cut to a red circle spins")
    assert len(p.shots) == 2


def test_motion_left_out_means_still():
    (o,) = parse_prompt("a red circle").objects
    assert o.motion is None and o.resolved_motion == "stays still"


@pytest.mark.parametrize(
    "text,why",
    [
        ("", "empty"),
        ("a flying elephant", "colour shape"),
        ("a red circle and a red square", "share a colour"),
        ("a red circle and a blue square and a green square and a pink circle", "1 to 3"),
        ("a red circle spins and passes behind a blue square", "moves left or right"),
    ],
)
def test_bad_prompts_say_what_is_accepted(text, why):
    with pytest.raises(PromptError, match=why) as e:
        parse_prompt(text)
    assert "colours: red" in str(e.value)


def test_short_prompts_round_trip_through_the_parser(rng):
    for _ in range(200):
        scene = sample_scene(rng)
        text = short_prompt(scene, rng, p=0.5)
        parsed = parse_prompt(text)
        assert len(parsed.shots) == len(scene.shots)
        for shot, pshot in zip(scene.shots, parsed.shots, strict=True):
            assert sorted(o.colour for o in shot.objects) == sorted(o.colour for o in pshot.objects), text
            got = {o.colour: (o.shape, o.resolved_motion) for o in pshot.objects}
            for o in shot.objects:
                assert got[o.colour] == (o.shape, o.motion), text


def test_detailed_caption_states_everything(rng):
    scene = scene_from_prompt(
        "a large red triangle bounces leaving a trail on a gray background, the camera pans left",
        rng,
    )
    text = detailed_caption(scene)
    for word in ("gray background", "large red triangle", "bounces", "trail", "camera pans left"):
        assert word in text


def test_sampler_covers_the_world_and_respects_exclusions(rng):
    held_out = {("red", "circle", "moves right"), ("blue", "square", "bounces")}
    seen = {"colour": set(), "shape": set(), "motion": set(), "size": set(), "background": set()}
    cameras, trails, shots, counts = set(), 0, set(), set()
    for _ in range(600):
        scene = sample_scene(rng, exclude=Exclusions(held_out))
        seen["background"].add(scene.background)
        shots.add(len(scene.shots))
        for shot in scene.shots:
            cameras.add(shot.camera)
            counts.add(len(shot.objects))
            for o in shot.objects:
                assert (o.colour, o.shape, o.motion) not in held_out
                seen["colour"].add(o.colour)
                seen["shape"].add(o.shape)
                seen["motion"].add(o.motion)
                seen["size"].add(o.size)
                trails += o.trail
    assert seen["colour"] == set(spec.COLOURS) and seen["shape"] == set(spec.SHAPES)
    assert seen["motion"] == set(spec.MOTIONS) | {"collides"}
    assert seen["size"] == set(spec.SIZES) and seen["background"] == set(spec.BACKGROUNDS)
    assert cameras == {None, "left", "right"} and trails > 0 and shots == {1, 2, 3} and counts == {1, 2, 3}
