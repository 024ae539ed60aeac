"""The prompts the README and the docs show: every world render line renders what it says,
and every generate prompt is read whole (no unknown words, expanded into a detailed caption),
while a prompt the expander cannot place is said to be used as it is, with the reason."""

from __future__ import annotations

import json
import re
import shlex
import warnings
from pathlib import Path

import pytest

from nanosora import cli, video, vocabulary
from nanosora.generation import expand
from nanosora.world.score import score

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# the modes that read given frames first: their prompt is merged into what the frames show
FROM_FRAMES = ("--image", "--extend", "--connect", "--edit", "--after")


def commands(name: str) -> list[tuple[str, list[str]]]:
    """(document, argv) of every `nanosora NAME ...` line of the docs, continuations joined."""
    out = []
    for doc in DOCS:
        text = doc.read_text().replace("\\\n", " ")
        for line in re.findall(rf"^\s*nanosora {name} .*$", text, flags=re.M):
            out.append((doc.name, shlex.split(line.strip(), comments=True)[1 + len(name.split()) :]))
    return out


def echoed(doc: str) -> dict[str, str]:
    """The files a document writes with `echo '...' > NAME` (and adds to with `>> NAME`)."""
    text = (ROOT / doc if doc == "README.md" else ROOT / "docs" / doc).read_text()
    files: dict[str, str] = {}
    for line, op, name in re.findall(r"^echo '(.*)' (>>?) (\S+)", text, flags=re.M):
        files[name] = files[name] + "\n" + line if op == ">>" and name in files else line
    return files


def flag(args: list[str], name: str, default: str) -> str:
    return args[args.index(name) + 1] if name in args else default


RENDERS = commands("world render")
GENERATES = commands("generate")


def test_the_docs_have_examples_to_check():
    assert len(RENDERS) >= 2 and len(GENERATES) >= 10


@pytest.mark.parametrize(("doc", "args"), RENDERS, ids=[f"{d}:{a[0]}" for d, a in RENDERS])
def test_world_render_examples_show_what_they_say(tmp_path, doc, args):
    out = tmp_path / Path(args[args.index("-o") + 1]).name
    argv = list(args)
    argv[argv.index("-o") + 1] = str(out)
    assert cli.main(["world", "render", *argv]) == 0, (doc, args)
    clip = video.read(out)
    verdict = score(clip.frames, clip.fps, args[0])
    assert verdict.passed, (doc, args, verdict)


@pytest.mark.parametrize(("doc", "args"), GENERATES, ids=[f"{d}:{a[0]}" for d, a in GENERATES])
def test_generate_prompts_are_read_whole(doc, args):
    from nanosora.model import load

    if "--batch" in args:  # a job per line of a file the document writes
        for line in map(json.loads, echoed(doc)[flag(args, "--batch", "")].splitlines()):
            mode = line.get("mode", "text")  # a mode that starts from frames is not expanded alone
            given = [f"--{mode}", "x"] if f"--{mode}" in FROM_FRAMES else []
            test_generate_prompts_are_read_whole(doc, [line["prompt"], *given])
        return
    shots = json.loads(echoed(doc)[flag(args, "--shots", "")]) if "--shots" in args else []
    prompts = [s["prompt"] for s in shots] or [args[0]]
    assert load().unknown_words(prompts) == [], (doc, prompts)  # "keeps" included
    if any(f in args for f in FROM_FRAMES):
        return  # expanded against the frames it is given (test_readme judges those clips)
    seconds = float(flag(args, "--seconds", "2"))
    aspect = float(flag(args, "--width", "64")) / float(flag(args, "--height", "64"))
    seed = int(flag(args, "--seed", "0"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", expand.ExpansionWarning)
        captions = expand.expand_shots(prompts, [seconds] * len(prompts), aspect, seed)
    for p, c in zip(prompts, captions, strict=True):
        assert c != p and re.match(r"(In the \w+ shot, )?[Oo]n a", c), (doc, p, c)


BATCHES = [(d, a) for d, a in GENERATES if "--batch" in a]


@pytest.mark.parametrize(("doc", "args"), BATCHES, ids=[d for d, _ in BATCHES])
def test_documented_batch_files_are_requests_read_before_any_model(tmp_path, monkeypatch, doc, args):
    import numpy as np

    from nanosora.cli.generate import read_batch

    monkeypatch.chdir(tmp_path)
    video.Video(np.zeros((17, 64, 64, 3), np.uint8), 8, {}).save("red.mp4")  # the README's first clip
    Path("jobs.jsonl").write_text(echoed(doc)[flag(args, "--batch", "")])
    jobs = read_batch("jobs.jsonl")
    lines = [json.loads(line) for line in Path("jobs.jsonl").read_text().splitlines()]
    assert [r.prompt for _, r in jobs] == [line["prompt"] for line in lines]
    assert [r.mode for _, r in jobs] == [line.get("mode", "text") for line in lines]
    for (_, r), line in zip(jobs, lines, strict=True):
        if "video" in line:
            assert r.video.shape == (17, 64, 64, 3)  # read, not a path


PAN = "a crimson ball rolling to the right, the camera pans left"  # cannot stay in view 4 s


def test_a_prompt_the_expander_cannot_place_is_said_with_its_reason(tmp_path, capsys):
    from tests.helpers import make_tiny_model

    with pytest.warns(expand.ExpansionWarning, match="cannot place"):
        assert expand.expand_prompt(PAN, 4.0, 2.0, 3) == PAN
    (tmp_path / "m").mkdir()
    model = make_tiny_model(tmp_path / "m")
    out = tmp_path / "pan.mp4"
    argv = ["generate", PAN, "-o", str(out), "--model", str(model), "--steps", "2"]
    assert cli.main([*argv, "--width", "128", "--height", "64", "--seconds", "4"]) == 0
    err = capsys.readouterr().err
    assert "warning: prompt:" in err and "used as it is" in err and "cannot place" in err
    meta = video.read(out).metadata
    assert meta["caption"] == PAN and "cannot place" in meta["not_expanded"][0]
    # a prompt it reads gets no such word
    assert cli.main(["generate", "a red circle moves right", *argv[2:]]) == 0
    assert "used as it is" not in capsys.readouterr().err
    assert "not_expanded" not in video.read(out).metadata
    assert vocabulary.message(["x"]) not in err


def test_the_documented_layout_moves_the_object_where_its_boxes_are(tmp_path, monkeypatch, capsys):
    """docs/usage.md's layout example with the shipped model: the planned circle runs along
    the bottom, the given layout's along the top, and both move right."""
    import numpy as np

    text = (ROOT / "docs" / "usage.md").read_text()
    block = text[text.index("# the planner puts") : text.index("```", text.index("# the planner puts"))]
    monkeypatch.chdir(tmp_path)
    for line in block.splitlines():
        if line.startswith("echo "):
            m = re.match(r"echo '(.*)' > (\S+)", line)
            Path(m[2]).write_text(m[1])
        elif line.startswith("nanosora "):
            args = shlex.split(line.split(" > ")[0])[1:]
            assert cli.main(args) == 0, line
            if " > " in line:
                Path(line.split(" > ")[1]).write_text(capsys.readouterr().out)

    def centres(path):
        frames = video.read(path).frames
        red = frames[..., 0].astype(int) - frames[..., 1] > 80
        ys, xs = zip(*[np.nonzero(r) for r in red[[0, -1]]], strict=True)
        return [(x.mean() / 64, y.mean() / 64) for x, y in zip(xs, ys, strict=True)]

    planned = json.loads(Path("planned.json").read_text())
    assert len(planned) == 1 and "red circle" in planned[0]["words"]
    (px0, py0), (px1, _) = centres("planned.mp4")
    (tx0, ty0), (tx1, ty1) = centres("top.mp4")
    assert py0 > 0.5 and ty0 < 0.35 and ty1 < 0.35  # bottom as planned; top as laid out
    assert px1 - px0 > 0.2 and tx1 - tx0 > 0.2  # both move right
    for f, prompt in (("planned.mp4", "a red circle moves right"), ("top.mp4", "a red circle moves right")):
        clip = video.read(f)
        assert score(clip.frames, clip.fps, prompt).passed, f
