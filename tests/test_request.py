"""The one generation request: its mode follows the arguments, it is checked when made, and it
survives the server's store (JSON) unchanged."""

import json

import numpy as np
import pytest

from nanosora.cli.generate import batch_request
from nanosora.generation.request import (
    DEFAULT_STRENGTH,
    GenerationRequest,
    Sampling,
    Shot,
    clip_frames,
    frames_for,
)

CLIP = np.zeros((5, 16, 16, 3), np.uint8)


@pytest.mark.parametrize(
    "kwargs,mode",
    [
        (dict(), "text"),
        (dict(image="a.png"), "image"),
        (dict(video=CLIP, extend="backward"), "extend"),
        (dict(video=CLIP, strength=0.3), "edit"),
        (dict(connect=(CLIP, CLIP)), "connect"),
        (dict(loop=True), "loop"),
        (dict(loop=True, image="a.png"), "loop"),
        (dict(shots=[{"prompt": "a red circle"}]), "shots"),
    ],
)
def test_the_mode_follows_the_arguments(kwargs, mode):
    assert GenerationRequest.from_kwargs("a red circle moves right", **kwargs).mode == mode


def test_keywords_are_gathered_into_the_request():
    r = GenerationRequest.from_kwargs(
        "a red circle", video=CLIP, extend="backward", steps=3, guidance=2.0, seed=7
    )
    assert r.direction == "backward" and r.seed == 7
    assert r.sampling == Sampling(steps=3, guidance=2.0)
    assert GenerationRequest.from_kwargs("a", video=CLIP, strength=0.25).strength == 0.25
    assert GenerationRequest(mode="edit", prompt="a", video="v.mp4").strength == DEFAULT_STRENGTH
    assert GenerationRequest.from_kwargs("a", shots=[{"prompt": "a red circle"}]).shots == (
        Shot("a red circle", 2.0),
    )


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(video=CLIP, extend="forward", strength=0.5), "choose one mode, not extend and edit"),
        (dict(video=CLIP, extend="sideways"), "extend 'sideways' is not valid: use forward or backward"),
        (dict(video=CLIP, strength=0.0), r"strength 0.0 is not valid: use a number in \(0, 1\]"),
        (dict(connect=(CLIP,)), "connect takes two videos"),
        (dict(loop=True, video=CLIP, extend="forward"), "loop works with text or an image, not with extend"),
        (dict(image="a.png", image_frame=16), "image_frame 16 is not valid: use 0 to 15"),
        (dict(seconds=61), "seconds 61 is not valid"),
        (dict(frames=0), "frames 0 is not valid"),
        (dict(steps=0), "steps 0 is not valid"),
        (dict(guidance=-1), "guidance -1 is not valid"),
        (dict(guidance=31), "guidance 31 is not valid: use a number from 0 to 30"),
        (dict(cond_guidance=40.0), "cond_guidance 40.0 is not valid: use a number from 0 to 30"),
        (dict(shots=[{"prompt": "a red circle", "seconds": 0}]), r"shot 1: seconds 0 is not valid"),
        (dict(shots=[{"prompt": "a", "length": 2}]), "shot 1 must be"),
        (dict(story=["a blue square"], shots=[{"prompt": "b"}]), "do not go with the shots mode"),
        (dict(story=["  "]), "story must be a list"),
        (dict(story="a blue square"), "story must be a list"),
    ],
)
def test_bad_requests_are_refused_when_made(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GenerationRequest.from_kwargs("a red circle", **kwargs)


def test_a_story_must_name_what_a_prompt_refers_to():
    # "the blue square" after a story with no blue object refers to nothing
    with pytest.raises(ValueError, match="shot 2 .* 'the blue"):
        GenerationRequest(prompt="the blue square bounces", story=("a red circle",))
    assert GenerationRequest(prompt="the red circle spins", story=("a red circle",)).story == (
        "a red circle",
    )
    # prompts used as written are not read as a story
    GenerationRequest(prompt="the blue square bounces", story=("a red circle",), expand=False)


def test_an_explicit_mode_needs_its_inputs_and_no_others():
    with pytest.raises(ValueError, match="extend needs a video"):
        GenerationRequest(mode="extend", prompt="a")
    with pytest.raises(ValueError, match="video does not go with the text mode"):
        GenerationRequest(mode="text", prompt="a", video="v.mp4")
    with pytest.raises(ValueError, match="mode 'remix' is not known"):
        GenerationRequest(mode="remix", prompt="a")
    with pytest.raises(TypeError, match="unexpected keyword.*colour"):
        GenerationRequest.from_kwargs("a", colour="red")


def test_a_stored_request_comes_back_unchanged():
    r = GenerationRequest(
        mode="image",
        prompt="it moves right",
        image="in/x.png",
        image_frame=3,
        width=128,
        height=64,
        seconds=1.5,
        seed=9,
        sampling=Sampling(steps=4, guidance_until=0.0, one_pass_guidance=False),
    )
    stored = json.loads(json.dumps(r.to_json()))
    assert GenerationRequest.from_json(stored) == r
    s = GenerationRequest.from_kwargs("x", shots=[{"prompt": "a red circle", "seconds": 1}, {"prompt": "b"}])
    assert GenerationRequest.from_json(json.loads(json.dumps(s.to_json()))) == s
    f = GenerationRequest(prompt="the red circle spins", story=("a red circle",), after="in/src.mp4")
    assert GenerationRequest.from_json(json.loads(json.dumps(f.to_json()))) == f
    with pytest.raises(ValueError, match="by path"):
        GenerationRequest(mode="edit", prompt="a", video=CLIP).to_json()
    with pytest.raises(ValueError, match="by path"):
        GenerationRequest(prompt="a", after=CLIP).to_json()
    with pytest.raises(ValueError, match="unknown request key.*input"):
        GenerationRequest.from_json({"prompt": "a", "input": "x.png"})


def test_a_batch_line_is_the_requests_own_json(tmp_path):
    r = GenerationRequest.from_kwargs("a red circle moves right", seconds=3, seed=4, steps=5, loop=True)
    line = json.loads(json.dumps(r.to_json()))
    assert batch_request(line, tmp_path) == r
    assert batch_request({"prompt": "a", "sampling": {"steps": 5}}, tmp_path).sampling.steps == 5
    with pytest.raises(ValueError, match="steps is now .sampling"):
        batch_request({"prompt": "a", "steps": 5}, tmp_path)
    with pytest.raises(ValueError, match="extend is now .mode.: .extend"):
        batch_request({"prompt": "a", "extend": "x.mp4"}, tmp_path)
    with pytest.raises(ValueError, match="says its .mode. .image or loop"):
        batch_request({"prompt": "a", "image": "x.png"}, tmp_path)
    with pytest.raises(ValueError, match="a prompt is needed"):
        batch_request({"seconds": 2}, tmp_path)
    with pytest.raises(ValueError, match="colour"):
        batch_request({"prompt": "a", "sampling": {"colour": 1}}, tmp_path)


def test_media_named_by_path_are_read_relative_to_the_batch_file(tmp_path):
    from nanosora import video
    from nanosora.generation.request_media import read_media

    clip = np.zeros((5, 32, 32, 3), np.uint8)
    clip[:, 8:16, 8:16] = 255
    video.Video(clip, 8, {"prompt": "a white square"}).save(tmp_path / "a.mp4")
    req = batch_request({"prompt": "it moves", "mode": "extend", "video": "a.mp4"}, tmp_path)
    assert req.video.shape == (5, 32, 32, 3)
    after = read_media(GenerationRequest(prompt="the white square spins", after="a.mp4"), tmp_path)
    assert after.after.shape[0] == 5 and after.story == ("a white square",)
    with pytest.raises(ValueError, match="missing.mp4"):
        batch_request({"prompt": "a", "mode": "edit", "video": "missing.mp4"}, tmp_path)


@pytest.mark.parametrize("fps", [4, 8, 12, 30])
@pytest.mark.parametrize("seconds", [0, 0.5, 1, 1.5, 2, 3, 10, 60])
def test_a_clip_shows_the_seconds_asked_and_is_made_in_whole_latents(seconds, fps):
    shown, made = clip_frames(seconds, fps), frames_for(seconds, fps)
    assert shown == (1 if seconds == 0 else seconds * fps)
    # made as the fewest 1 + 4k frames that hold what is shown; the rest is dropped
    assert (made - 1) % 4 == 0 and shown <= made < shown + 4
