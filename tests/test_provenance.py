"""Provenance: the sealed manifest and the invisible watermark, and `nanosora verify`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nanosora import cli, provenance, video
from nanosora.world.parse import scene_from_prompt
from nanosora.world.render import render


def clip(prompt="a small blue square bounces on a white background", size=(64, 64)):
    scene = scene_from_prompt(prompt, np.random.default_rng(0), aspect=size[0] / size[1])
    return render(scene, size[0], size[1], 8, 2.0)


def marked(prompt="a red circle moves right", size=(64, 64)):
    frames = provenance.embed(clip(prompt, size))
    meta = {"prompt": prompt, "seed": 3, "model": "test", "watermark": provenance.MARK}
    return provenance.SealedVideo(frames, 8, meta)


@pytest.mark.parametrize("prompt", ["a red circle moves right", "a yellow circle stays still",
                                    "a big green triangle spins on a gray background"])  # fmt: skip
def test_watermark_reads_back_and_is_faint(prompt):
    raw = clip(prompt)
    m = provenance.embed(raw)
    assert provenance.detect(m) == 32
    assert provenance.detect(raw) < provenance.MIN_MATCH
    assert np.abs(m.astype(int) - raw).max() <= 3 + 3  # the chip plus the lift off black/white


@pytest.mark.parametrize("ext", ["mp4", "gif", "png"])
def test_saved_files_verify_as_authentic(tmp_path, ext):
    path = marked().save(tmp_path / f"a.{ext}")
    r = provenance.verify(path)
    assert r.sealed and r.intact and r.manifest["prompt"] == "a red circle moves right"
    assert r.verdict().startswith("authentic")
    if ext != "png":  # a PNG is a contact sheet; its frames are not laid out as marked
        assert r.watermarked


def test_reencoded_edited_and_tampered_files_are_caught(tmp_path):
    path = marked().save(tmp_path / "a.mp4")
    v = video.read(path)
    video.write_mp4(tmp_path / "re.mp4", v.frames, 8, v.metadata, crf=28)  # re-encoded, manifest kept
    r = provenance.verify(tmp_path / "re.mp4")
    assert r.sealed and not r.intact and r.watermarked and r.verdict().startswith("changed")
    video.remux_mp4(path, dict(v.metadata, prompt="something else"))  # manifest edited
    assert not provenance.verify(path).intact
    frames = v.frames.copy()
    frames[3, 10:20, 10:20] = 255
    video.write(tmp_path / "t.gif", frames, 8, v.metadata)  # pixels retouched
    assert not provenance.verify(tmp_path / "t.gif").intact
    video.write(tmp_path / "stripped.mp4", v.frames, 8)  # manifest stripped, mark stays
    r = provenance.verify(tmp_path / "stripped.mp4")
    assert not r.sealed and r.watermarked and "without a manifest" in r.verdict()
    video.write(tmp_path / "plain.mp4", clip(), 8)
    assert provenance.verify(tmp_path / "plain.mp4").verdict().startswith("no nanosora")


def test_verify_command(tmp_path, capsys):
    path = marked().save(tmp_path / "a.mp4")
    assert cli.main(["verify", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["intact"] and out["watermark"] and out["manifest"]["seed"] == 3
    video.write(tmp_path / "plain.mp4", clip(), 8)
    assert cli.main(["verify", str(tmp_path / "plain.mp4")]) == 1
    assert cli.main(["verify", str(tmp_path / "missing.mp4")]) == 2
    assert "missing.mp4" in capsys.readouterr().err
