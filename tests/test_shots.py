"""Shot lists read as one story: an object a shot introduces keeps its size, shape and colour
in later shots that name it as known, and a shot cannot refer to an object never introduced."""

import json

import numpy as np
import pytest
import torch

from nanosora import cli, video
from nanosora.generation import expand, pipeline
from nanosora.generation.request import shots_of
from nanosora.model import load
from tests.helpers import make_tiny_model


def test_a_later_shot_inherits_the_object_an_earlier_shot_introduced():
    caps = expand.expand_shots(
        ["a large blue square stays still", "the blue square bounces"], [2.0, 2.0], 1.0, seed=0
    )
    assert len(caps) == 2
    assert "large blue square" in caps[0] and "stays still" in caps[0] and "bounces" not in caps[0]
    # without the story, "the blue square" alone would be expanded as a medium one
    assert "large blue square" in caps[1] and "bounces" in caps[1]
    alone = expand.expand_prompt("the blue square bounces", 2.0, 1.0, seed=0)
    assert "medium blue square" in alone


@pytest.mark.parametrize(
    "shots,message",
    [
        (["a red circle stays still", "the blue square bounces"], "shot 2 .* 'the blue"),
        (["the red circle stays still"], "shot 1 .* no earlier shot names a red object"),
    ],
)
def test_a_reference_to_nothing_is_refused(shots, message):
    with pytest.raises(ValueError, match=message):
        shots_of([{"prompt": p} for p in shots])
    shots_of([{"prompt": p} for p in shots], expand=False)  # prompts used as written: no story


@pytest.mark.parametrize(
    "shots,message",
    [
        ([], "non-empty list"),
        ([{"prompt": "  "}], "empty prompt"),
        ([{"prompt": "a red circle", "seconds": 61}], "seconds 61"),
        ([{"prompt": "a red circle", "seconds": 40}, {"prompt": "the red circle", "seconds": 30}], "in all"),
    ],
)
def test_bad_shot_lists_are_refused(shots, message):
    with pytest.raises(ValueError, match=message):
        shots_of(shots)


def test_generate_keeps_the_shots_in_order(tmp_path):
    model = load(make_tiny_model(tmp_path))
    shots = [
        {"prompt": "a large red circle stays still", "seconds": 1},
        {"prompt": "the red circle falls", "seconds": 1},
    ]
    v = model.generate(shots=shots, steps=1, seed=0)
    caps = v.metadata["caption"]
    assert "stays still" in caps[0] and "falls" in caps[1] and "large red circle" in caps[1]
    flipped = model.generate(shots=[{"prompt": "a large red circle falls", "seconds": 1}, shots[0]], steps=1)
    assert "falls" in flipped.metadata["caption"][0] and len(v.frames) == len(flipped.frames)


def test_each_shot_is_drawn_from_its_own_caption_in_order(tmp_path, monkeypatch):
    """The frames of shot i come from the fill whose text is shot i's caption: a fill stub
    paints each window with the index of the caption it was given."""
    model = load(make_tiny_model(tmp_path))
    texts = []

    def encode(caps):
        texts.append(caps[0])
        return torch.full((1, 1, 384), float(len(texts))), torch.ones(1, 1, dtype=torch.bool)

    def fill(vae, dit, tl, text, *a, **k):
        return np.full(tl.frames.shape, int(text[0][0, 0, 0]), np.uint8)

    monkeypatch.setattr(model, "encode_text", encode)
    monkeypatch.setattr(pipeline, "fill", fill)
    shots = [
        {"prompt": "a red circle stays still", "seconds": 1},
        {"prompt": "a blue square falls", "seconds": 2},
    ]
    v = model.generate(shots=shots, steps=1, expand=False, watermark=False)
    first, second = texts.index(shots[0]["prompt"]) + 1, texts.index(shots[1]["prompt"]) + 1
    assert (v.frames[:8] == first).all() and (v.frames[8:] == second).all() and len(v.frames) == 8 + 16


def test_cli_refuses_a_dangling_reference_before_loading(tmp_path, capsys):
    f = tmp_path / "shots.json"
    f.write_text(json.dumps([{"prompt": "a red circle"}, {"prompt": "the green triangle spins"}]))
    assert cli.main(["generate", "--shots", str(f), "-o", str(tmp_path / "s.mp4")]) == 2
    assert "the green" in capsys.readouterr().err and not (tmp_path / "s.mp4").exists()


def test_cli_after_continues_the_story_of_a_video_across_a_cut(tmp_path, capsys):
    model = make_tiny_model(tmp_path)
    first, second = tmp_path / "first.mp4", tmp_path / "second.mp4"
    args = ["--model", str(model), "--steps", "1", "--seconds", "1"]
    assert cli.main(["generate", "a large red square stays still", "-o", str(first), *args]) == 0
    assert (
        cli.main(["generate", "the red square bounces", "--after", str(first), "-o", str(second), *args]) == 0
    )
    meta = video.read_metadata(second)
    assert meta["story"] == ["a large red square stays still"]
    assert "large red square" in meta["caption"] and "bounces" in meta["caption"]
    # a prompt naming an object the video never showed is refused before the model loads
    third = tmp_path / "third.mp4"
    assert (
        cli.main(["generate", "the blue circle spins", "--after", str(first), "-o", str(third), *args]) == 2
    )
    assert "the blue" in capsys.readouterr().err and not third.exists()
