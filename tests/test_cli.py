"""The `nanosora` command: render, sample, score, and its errors (exit 2, no traceback)."""

import json
import subprocess
import sys

import pytest

from nanosora import video
from nanosora.cli import main


def test_render_then_score(tmp_path, capsys):
    out = tmp_path / "a.mp4"
    prompt = "a red circle moves right and a small blue square bounces on a white background"
    assert main(["world", "render", prompt, "-o", str(out), "--width", "128", "--seconds", "3"]) == 0
    v = video.read(out)
    assert v.frames.shape == (24, 64, 128, 3) and v.seconds == 3  # 3 s asked, 3 s shown
    assert v.metadata["prompt"] == prompt and "caption" in v.metadata
    capsys.readouterr()
    assert main(["world", "score", str(out), prompt]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["passed"] is True
    assert main(["world", "score", str(out), "a red circle moves left"]) == 1


@pytest.mark.parametrize("ext", [".gif", ".png"])
def test_render_formats(tmp_path, ext):
    assert main(["world", "render", "a green triangle spins", "-o", str(tmp_path / f"a{ext}")]) == 0
    assert (tmp_path / f"a{ext}").stat().st_size > 0


def test_render_seconds_0_is_one_frame_as_generate_makes_it(tmp_path, capsys):
    out = tmp_path / "still.png"
    assert (
        main(["world", "render", "a yellow circle on a white background", "-o", str(out), "--seconds", "0"])
        == 0
    )
    assert video.read(out).frames.shape == (1, 64, 64, 3)
    assert "1 frame," in capsys.readouterr().out
    assert main(["world", "score", str(out), "a yellow circle on a white background"]) == 0
    with pytest.raises(SystemExit):
        main(["world", "sample", "--n", "1", "-o", str(tmp_path / "d"), "--seconds", "0"])  # clips move


def test_sample_writes_clips_and_captions(tmp_path):
    assert main(["world", "sample", "--n", "3", "-o", str(tmp_path / "d"), "--seed", "4"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "d" / "captions.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all({"file", "caption", "prompt"} <= set(r) for r in rows)
    assert all((tmp_path / "d" / r["file"]).exists() for r in rows)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["world", "render", "a flying elephant", "-o", "X/a.mp4"], "cannot read the prompt"),
        (["world", "render", "a red circle", "-o", "X/a.avi"], "unknown extension"),
        (["world", "render", "a red circle", "-o", "X/no/such/a.mp4"], "does not exist"),
        (["world", "score", "X/missing.mp4", "a red circle"], "no such file"),
    ],
)
def test_bad_input_exits_2_with_a_message(tmp_path, capsys, argv, message):
    argv = [a.replace("X", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--width", "50"),
        ("--height", "1024"),
        ("--fps", "0"),
        ("--seconds", "-1"),
        ("--seconds", "61"),
    ],
)
def test_bad_options_exit_2(tmp_path, flag, value, capsys):
    with pytest.raises(SystemExit) as e:
        main(["world", "render", "a red circle", "-o", str(tmp_path / "a.mp4"), flag, value])
    assert e.value.code == 2
    assert "not valid" in capsys.readouterr().err
    assert not (tmp_path / "a.mp4").exists()


def test_python_dash_m_and_help():
    out = subprocess.run([sys.executable, "-m", "nanosora", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "world render" in out.stdout
