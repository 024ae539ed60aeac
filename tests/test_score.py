"""The pixel-only scorer agrees with ground truth and explains itself."""

import numpy as np
import pytest

from nanosora import video
from nanosora.world.agreement import run
from nanosora.world.parse import scene_from_prompt
from nanosora.world.render import render
from nanosora.world.score import score


def clip(prompt, seed=0, w=64, h=64, seconds=2.0):
    return render(scene_from_prompt(prompt, np.random.default_rng(seed), w / h, seconds), w, h, 8, seconds)


def test_agreement_on_random_scenes():
    a = run(42, seed=5)
    assert a.rate("true prompt passes") >= 0.95, a.failures
    for kind in ("changed colour fails", "changed shape fails", "changed direction fails"):
        assert a.rate(kind) >= 0.95, a.failures


@pytest.mark.parametrize(
    "prompt,wrong",
    [
        ("a red circle moves right", "a red circle moves left"),
        ("a red circle moves up", "a red circle stays still"),
        ("a blue square bounces", "a blue square stays still"),
        ("a green triangle falls", "a green triangle moves up"),
        ("a pink square spins", "a pink square stays still"),
        ("a yellow circle grows", "a yellow circle shrinks"),
        ("a small cyan circle", "a large cyan circle"),
        ("a purple triangle on a white background", "a purple triangle on a gray background"),
        ("a red circle and a blue square", "a red circle"),
        (
            "an orange circle moves right leaving a trail",
            "an orange circle moves right and a red square",
        ),
        (
            "a red circle collides with a blue square",
            "a red circle stays still and a blue square stays still",
        ),
    ],
)
def test_each_check_can_fail(prompt, wrong):
    frames = clip(prompt)
    assert score(frames, 8, prompt).passed, score(frames, 8, prompt).explain()
    assert not score(frames, 8, wrong).passed


def test_trail_check_needs_a_trail():
    frames = clip("an orange circle moves right")
    v = score(frames, 8, "an orange circle moves right leaving a trail")
    assert not v.passed and any(c.check == "trail" and not c.passed for c in v.objects[0].checks)


def test_camera_pan_is_undone_before_motion_checks():
    frames = clip("a red circle stays still, the camera pans right")
    assert score(frames, 8, "a red circle stays still, the camera pans right").passed
    assert not score(frames, 8, "a red circle stays still").passed  # on screen it drifts left


@pytest.mark.parametrize("w,h", [(128, 64), (64, 128)])
def test_wide_and_tall(w, h):
    prompt = "a large blue triangle moves down and a small yellow square bounces on a gray background"
    assert score(clip(prompt, w=w, h=h), 8, prompt).passed


def test_long_clip_persistence():
    prompt = "a red circle bounces and a green square spins"
    assert score(clip(prompt, seconds=20.0), 8, prompt).passed


def test_scores_survive_h264(tmp_path):
    prompt = "a small blue square bounces and a red triangle falls on a white background"
    frames = clip(prompt)
    video.write(tmp_path / "c.mp4", frames, 8)
    back = video.read(tmp_path / "c.mp4")
    assert score(back.frames, back.fps, prompt).passed


def test_verdict_explains_every_check():
    v = score(clip("a red circle moves right"), 8, "a red circle moves right")
    d = v.to_dict()
    names = [c["check"] for c in d["objects"][0]["checks"]]
    assert names[:2] == ["colour", "shape"] and any(n.startswith("motion") for n in names)
    assert "PASS" in v.explain()


def test_bad_frames_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        score(np.zeros((4, 8, 8), np.float32), 8, "a red circle")


def _integrity(verdict, i=0):
    return next(c for c in verdict.objects[i].checks if c.check == "integrity")


def test_integrity_passes_ground_truth_even_when_objects_cross():
    for prompt in (
        "a large red square stays still",
        "a red circle moves right and a blue square moves left",
        "a red circle collides with a blue square",
        "a yellow triangle spins and a purple circle bounces",
    ):
        v = score(clip(prompt), 8, prompt)
        assert all(_integrity(v, i).passed for i in range(len(v.objects))), v.explain()


def test_integrity_fails_a_split_object():
    prompt = "a large red square stays still"
    frames = clip(prompt).copy()
    ys, xs = np.nonzero((frames[0].astype(int) - [230, 40, 40]).__abs__().sum(-1) < 30)
    cx = int(xs.mean())
    frames[5:8, :, cx - 1 : cx + 2] = 0  # a background seam cuts it in two for three frames
    v = score(frames, 8, prompt)
    check = _integrity(v)
    assert not v.passed and not check.passed and "in pieces in 3 frames" in check.detail


def test_integrity_fails_a_melted_object():
    """Two objects apart, then for some frames the second takes the first one's colour (two
    objects, one identity): the first is then in two pieces at twice its area."""
    prompt = "a large red circle stays still and a large blue square stays still"
    frames = clip(prompt, seed=1).copy()
    blue = np.abs(frames.astype(int) - [50, 90, 235]).sum(-1) < 60
    frames[6:10][blue[6:10]] = [230, 40, 40]
    v = score(frames, 8, prompt)
    assert not v.passed
    detail = _integrity(v, 0).detail
    assert "in pieces in 4 frames" in detail and "area outside 0.5-2x" in detail


def test_count_blobs_counts_8_connected_pieces():
    from nanosora.world.measure import count_blobs

    m = np.zeros((2, 8, 8), bool)
    m[0, 1:3, 1:3] = True
    m[0, 3:5, 3:5] = True  # touches the first only at a corner: one piece
    m[1, 0:2, 0:2] = True
    m[1, 5:8, 5:8] = True
    m[1, 0, 7] = True  # a single pixel, under min_px
    assert count_blobs(m, min_px=2).tolist() == [1, 2]
