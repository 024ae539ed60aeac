"""The README's generate examples run as written, in order, in an empty folder, with the
shipped model, and each clip shows what its line says (the Flatland scorer judges it)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest

from nanosora import cli, video
from nanosora.world.score import score

README = Path(__file__).resolve().parent.parent / "README.md"

# What each output must show, as a Flatland prompt for the scorer. Outputs of modes that
# start from given frames are judged against what those frames hold (the image is a big
# yellow circle; red.mp4 a red circle moving right).
SHOWS = {
    "red.mp4": "a red circle moves right",
    "wide.mp4": "a big blue square stays still",
    "first.png": "a big yellow circle",
    "anim.mp4": "a big yellow circle moves right",
    "towards.mp4": "a big yellow circle moves left",
    "longer.mp4": "a red circle moves right",
    "loop.gif": "a red circle moves left",
    "story.mp4": "a big blue square stays still, then cut to the blue square moves right",
    "minute.mp4": "a red circle stays still",
    "out/one.mp4": "a green circle moves up",
    "fast.mp4": "a red circle moves right",
}


def generate_lines() -> list[str]:
    text = README.read_text()
    start = text.index("```bash\n", text.index("## Generate")) + len("```bash\n")
    return [line for line in text[start : text.index("```", start)].splitlines() if line.strip()]


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """Every line run in one empty folder: the nanosora lines through the CLI's entry point
    (as the console script calls it), the others by the shell."""
    import os

    folder = tmp_path_factory.mktemp("readme")
    before = Path.cwd()
    os.chdir(folder)
    try:
        for line in generate_lines():
            args = shlex.split(line, comments=True)
            if args[0] == "nanosora":
                assert cli.main(args[1:]) == 0, line
            else:
                subprocess.run(line, shell=True, check=True, cwd=folder)
    finally:
        os.chdir(before)
    return folder


def test_readme_lines_are_the_examples_judged_here():
    outputs = set()
    for line in generate_lines():
        args = shlex.split(line, comments=True)
        for flag in ("-o", "--out-dir"):
            if flag in args:
                outputs.add(args[args.index(flag) + 1])
    # every output is judged below (a batch's outputs by their names in its folder)
    assert outputs - {"out/"} <= set(SHOWS) | {"joined.mp4", "earlier.mp4", "edited.mp4", "next.mp4"}
    assert {k for k in SHOWS if "/" not in k} <= outputs


@pytest.mark.parametrize("name", sorted(SHOWS))
def test_readme_example_shows_what_it_says(ran, name):
    clip = video.read(ran / name)
    verdict = score(clip.frames, clip.fps, SHOWS[name])
    assert verdict.passed, verdict.explain()


def test_readme_examples_without_a_single_reading_keep_their_inputs(ran):
    red = video.read(ran / "red.mp4").frames
    # a connect holds both clips whole around the new frames; an extension keeps its clip
    joined = video.read(ran / "joined.mp4").frames
    assert len(joined) == len(red) + len(video.read(ran / "longer.mp4").frames) + 8
    earlier = video.read(ran / "earlier.mp4").frames
    assert len(earlier) == len(red) + 16
    # "ending on it": the clip towards the image ends on the image itself
    towards, first = video.read(ran / "towards.mp4").frames, video.read(ran / "first.png").frames
    assert np.abs(towards[-1].astype(int) - first[0].astype(int)).mean() < 8
    edited = video.read(ran / "edited.mp4")
    assert edited.frames.shape == red.shape
    # the image-to-video captions were merged with what the image shows
    caption = video.read(ran / "anim.mp4").metadata["caption"]
    assert "large yellow circle" in caption, caption
    # the shot after the story is the story's big blue square, spinning
    after = video.read(ran / "next.mp4").metadata
    assert "large blue square" in after["caption"] and "spins" in after["caption"], after["caption"]
    assert after["story"] == [s["prompt"] for s in json.loads((ran / "shots.json").read_text())]


def test_readme_minute_keeps_its_object_in_every_frame(ran):
    clip = video.read(ran / "minute.mp4")
    assert len(clip.frames) == 60 * 8
    checks = {c.check: c for c in score(clip.frames, clip.fps, SHOWS["minute.mp4"]).objects[0].checks}
    assert checks["colour"].passed and checks["shape"].passed, checks


STUDIO = Path(__file__).resolve().parent.parent / "nanosora" / "server" / "studio.html"


def test_studio_examples_are_drawn_at_several_seeds():
    """The studio's example chips are what a newcomer clicks first, at the API's random
    seeds: each passes the scorer with the shipped model at three seeds."""
    import re

    from nanosora.model import load

    text = STUDIO.read_text()
    examples = re.findall(r'^  "([^"]+)",$', text[text.index("const EXAMPLES") :], re.M)
    assert len(examples) == 5
    model = load()
    for prompt in examples:
        for seed in (1, 2, 3):
            v = model.generate(prompt, seconds=2, seed=seed, watermark=False)
            verdict = score(v.frames, v.fps, prompt)
            assert verdict.passed, verdict.explain()
