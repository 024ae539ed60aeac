"""Every generation mode on tiny untrained models: shapes, given frames kept, determinism,
the window plan behind long videos, the CLI and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nanosora import cli, video
from nanosora.config import DEFAULT_GUIDANCE_UNTIL
from nanosora.generation import pipeline, timeline
from nanosora.generation.request import Sampling
from nanosora.model import load
from nanosora.networks.conditioning import Conditioning
from tests.helpers import make_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def model(model_dir):
    return load(model_dir)


def clip(n, h=32, w=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


FAST = dict(steps=2, width=32, height=32, watermark=False)  # exact frames; test_provenance checks the mark


def test_text_to_video_and_image_shapes_and_determinism(model):
    a = model.generate("a red circle moves right", seconds=2, seed=3, **FAST)
    # 2 s at 8 fps: 16 frames of 1/8 s (17 made, the last dropped)
    assert a.frames.shape == (16, 32, 32, 3) and a.metadata["mode"] == "text"
    assert a.metadata["caption"].startswith("On a")  # the prompt was expanded
    b = model.generate("a red circle moves right", seconds=2, seed=3, **FAST)
    np.testing.assert_array_equal(a.frames, b.frames)
    c = model.generate("a red circle moves right", seconds=2, seed=4, **FAST)
    assert not np.array_equal(a.frames, c.frames)
    img = model.generate("a red circle", seconds=0, **FAST)
    assert img.frames.shape == (1, 32, 32, 3)
    wide = model.generate("a red circle", seconds=1, steps=1, width=64, height=32, watermark=False)
    assert wide.frames.shape == (8, 32, 64, 3)


def test_image_to_video_keeps_the_image_where_placed(model):
    im = clip(1)[0]
    first = model.generate("it moves right", image=im, seconds=2, **FAST)
    np.testing.assert_array_equal(first.frames[0], im)
    later = model.generate("it moves right", image=im, image_frame=8, seconds=2, **FAST)
    np.testing.assert_array_equal(later.frames[8], im)
    assert later.frames.shape[0] == 16 and later.metadata["image_frame"] == 8


def test_image_is_resized_to_the_asked_size(model):
    im = clip(1, 44, 60)[0]
    v = model.generate("a red circle", image=im, seconds=1, steps=1, width=32, height=16)
    assert v.frames.shape == (8, 16, 32, 3)
    assert model.generate("a red circle", image=im, seconds=0, steps=1).frames.shape[1:3] == (48, 64)


def test_extend_forward_and_backward_keep_the_video(model):
    src = clip(9)
    fwd = model.generate("it keeps moving", video=src, extend="forward", seconds=2, **FAST)
    assert fwd.frames.shape[0] == 9 + 16
    np.testing.assert_array_equal(fwd.frames[:9], src)
    back = model.generate("it keeps moving", video=src, extend="backward", seconds=1, **FAST)
    assert back.frames.shape[0] == 8 + 9
    np.testing.assert_array_equal(back.frames[8:], src)


def test_connect_keeps_both_videos_and_adds_the_gap(model):
    a, b = clip(9, seed=1), clip(13, seed=2)
    v = model.generate("the circle moves across", connect=(a, b), seconds=1, **FAST)
    assert v.frames.shape[0] == 9 + 8 + 13
    np.testing.assert_array_equal(v.frames[:9], a)
    np.testing.assert_array_equal(v.frames[-13:], b)


def test_edit_keeps_the_video_shape_and_strength_sets_how_much_of_it_survives(model):
    src = clip(17)
    seen = []
    v = model.generate(
        "a blue circle", video=src, strength=0.5, callback=lambda i, n, x: seen.append((i, n)), **FAST
    )
    assert v.frames.shape == src.shape and v.metadata["mode"] == "edit" and v.metadata["strength"] == 0.5
    # the progress count over both windows is exact: it ends at its total, one step at a time
    assert [i for i, _ in seen] == list(range(1, len(seen) + 1)) and seen[-1][0] == seen[-1][1]
    text, null = model.encode_text(["a blue circle"]), model.encode_text([""])
    init = torch.randn(1, 4, 3, 4, 4, generator=torch.Generator().manual_seed(1))

    def edit(strength):
        z = pipeline.sample_latents(
            model.dit, text, null, (4, 3, 4, 4), [0], Sampling(steps=4), init=init, strength=strength
        )
        return (z - init).pow(2).mean().item()

    assert edit(0.1) < edit(0.5) < edit(1.0)
    assert pipeline.schedule_for(10, 1.0, 0.3)[0] == 0.3 and len(pipeline.schedule_for(10, 1.0, 0.3)) == 4


def test_guidance_until_skips_the_guidance_pass_of_late_steps(model):
    text, null = model.encode_text(["a red circle moves right"]), model.encode_text([""])
    sizes = []
    real_forward = type(model.dit).forward

    def counting(self, x, *a, **k):
        sizes.append(x.shape[0])
        return real_forward(self, x, *a, **k)

    def sample(guidance_until, cond=None):
        sizes.clear()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(type(model.dit), "forward", counting)
            sp = Sampling(steps=6, guidance=4.0, guidance_until=guidance_until)
            z = pipeline.sample_latents(model.dit, text, null, (4, 3, 4, 4), [0], sp, cond)
        return z, list(sizes)

    every, b_every = sample(guidance_until=0.0)
    never, b_never = sample(guidance_until=1.0)
    half, b_half = sample(guidance_until=0.5)
    schedule = pipeline.schedule_for(6, pipeline.shift_of(model.dit, (4, 3, 4, 4)))
    assert b_every == [2] * 6 and b_never == [1] * 6
    assert b_half == [2 if t > 0.5 else 1 for t in schedule[:-1]] and 1 in b_half and 2 in b_half
    # no guidance at any step is exactly guidance 1 (the text pass alone)
    unguided = pipeline.sample_latents(
        model.dit, text, null, (4, 3, 4, 4), [0], Sampling(steps=6, guidance=1.0)
    )
    torch.testing.assert_close(never, unguided)
    assert not torch.allclose(every, never) and not torch.allclose(half, every)
    # conditioned (image) mode slices its conditioning with the text context
    cond, fm = torch.randn(1, 4, 3, 4, 4), torch.tensor([[1.0, 0.0, 0.0]])
    z, b_cond = sample(guidance_until=0.5, cond=Conditioning(cond, fm))
    assert b_cond == b_half and torch.equal(z[:, :, 0], cond[:, :, 0])


def test_loop_regenerates_only_the_end(model):
    base = model.generate("a red circle moves left", seconds=2, seed=5, **FAST)
    looped = model.generate("a red circle moves left", seconds=2, seed=5, loop=True, **FAST)
    assert looped.frames.shape == base.frames.shape and looped.metadata["mode"] == "text+loop"
    # a 16-frame loop keeps its first 8 frames and remakes the last 8 to lead into frame 0
    np.testing.assert_array_equal(looped.frames[:8], base.frames[:8])
    assert not np.array_equal(looped.frames[8:], base.frames[8:])


def test_loop_timeline_puts_the_start_after_the_end():
    tl = timeline.loop_timeline(frames := clip(17))
    assert len(tl) == 21 and tl.known[:9].all() and not tl.known[9:17].any() and tl.known[17:].all()
    np.testing.assert_array_equal(tl.frames[17:], frames[:4])
    # a loop of 16 frames (2 s at 8 fps): frame 16 is frame 0 again, up to a whole latent group
    tl = timeline.loop_timeline(frames, 16)
    assert len(tl) == 21 and tl.known[:8].all() and not tl.known[8:16].any() and tl.known[16:].all()
    np.testing.assert_array_equal(tl.frames[16:], frames[:5])
    with pytest.raises(ValueError, match="a loop needs at least 9 frames"):
        timeline.loop_timeline(frames, 8)


def test_shots_are_joined_in_order(model):
    shots = [{"prompt": "a red circle moves right", "seconds": 1}, {"prompt": "a blue square", "seconds": 1}]
    v = model.generate(shots=shots, **FAST)
    assert v.frames.shape[0] == 8 + 8 and len(v.metadata["caption"]) == 2


def test_long_video_is_made_in_windows_with_context(model):
    steps = []
    v = model.generate(
        "a red circle moves right", seconds=4, callback=lambda i, n, x: steps.append((i, n)), **FAST
    )
    assert v.frames.shape[0] == 32  # 33 made in windows, 4 s shown
    windows = timeline.plan(np.zeros(33, bool), 9)
    assert steps[-1] == (2 * len(windows), 2 * len(windows))
    # every window after the first starts inside what is known (its context)
    known = np.zeros(33, bool)
    left, _ = timeline.context(9)
    assert left == 1 and timeline.context(17) == (5, 8)
    for s, e in windows:
        assert e - s == 9
        if known.any():
            assert known[s : s + left].all() and not known[s + left]
        known[s:e] = True
    assert known.all()


def test_window_plan_goes_backwards_from_a_late_image():
    known = np.zeros(41, bool)
    known[30] = True
    windows = timeline.plan(known, 17)
    assert windows[0] == (21, 38)  # the image (frame 30) is in the first window, 8 frames of context
    assert windows[1] == (12, 29)  # then backwards, keeping 8 frames of context on the right
    assert timeline.plan(np.ones(5, bool), 17) == []


def test_latent_mask_groups():
    k = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0], bool)
    assert timeline.latent_mask(k).tolist() == [True, True, False]
    lone = np.zeros(9, bool)
    lone[6] = True
    assert timeline.latent_mask(lone).tolist() == [False, False, True]
    assert timeline.window_length(16, 17) == 13 and timeline.window_length(100, 17) == 17


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(width=30), "multiples of 16"),
        (dict(guidance=-1), "guidance"),
        (dict(steps=0), "steps"),
        (dict(seconds=61), "seconds"),
        (dict(guidance_until=1.5), "guidance-until 1.5 is not valid"),
        (dict(image=np.zeros((4, 4, 3), np.uint8), strength=0.5), "choose one mode"),
        (dict(video=np.zeros((5, 16, 16, 3), np.uint8)), "needs a mode"),
        (dict(video=np.zeros((5, 16, 16, 3), np.uint8), extend="sideways"), "forward or backward"),
        (dict(video=np.zeros((5, 16, 16, 3), np.uint8), strength=1.5), "strength"),
        (dict(image=np.zeros((16, 16, 3), np.uint8), image_frame=40), "image_frame"),
        (dict(image=np.zeros((16, 16), np.uint8)), "uint8 array"),
        (dict(shots=[]), "shots"),
        (dict(shots=[{"prompt": "x", "seconds": -1}]), "shot 1"),
        (dict(loop=True, video=np.zeros((5, 16, 16, 3), np.uint8), strength=0.5), "loop"),
    ],
)
def test_bad_arguments_are_refused(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model.generate("a red circle", **kwargs)


def test_cli_modes_and_metadata(model_dir, tmp_path, capsys):
    out = tmp_path / "a.mp4"
    base = ["generate", "--model", str(model_dir), "--width", "32", "--height", "32", "--steps", "1"]
    assert cli.main([*base, "a red circle moves right", "-o", str(out), "--seconds", "1", "--seed", "7"]) == 0
    meta = video.read_metadata(out)
    assert meta["seed"] == 7 and meta["prompt"] == "a red circle moves right" and meta["mode"] == "text"
    assert meta["guidance_until"] == DEFAULT_GUIDANCE_UNTIL
    out_every = tmp_path / "every.mp4"
    assert (
        cli.main([*base, "a red circle", "-o", str(out_every), "--seconds", "0", "--guidance-until", "0"])
        == 0
    )
    assert video.read_metadata(out_every)["guidance_until"] == 0
    img = tmp_path / "still.png"
    video.write_png(img, clip(1)[0])
    out2 = tmp_path / "b.mp4"
    assert cli.main([*base, "it moves", "--image", str(img), "-o", str(out2), "--seconds", "1"]) == 0
    assert video.read(out2).frames.shape[0] == 8
    out3 = tmp_path / "c.mp4"
    assert cli.main([*base, "more", "--extend", str(out), "--seconds", "1", "-o", str(out3)]) == 0
    assert video.read(out3).frames.shape[0] == 8 + 8
    shots = tmp_path / "shots.json"
    shots.write_text(json.dumps([{"prompt": "a red circle", "seconds": 1}, {"prompt": "a blue square"}]))
    out4 = tmp_path / "d.mp4"
    assert cli.main([*base, "--shots", str(shots), "-o", str(out4)]) == 0
    assert video.read_metadata(out4)["mode"] == "shots"


def test_cli_batch_writes_every_job(model_dir, tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        json.dumps(
            {
                "name": "one",
                "prompt": "a red circle",
                "seconds": 1,
                "width": 32,
                "height": 32,
                "sampling": {"steps": 1},
            }
        )
        + "\n\n"
        + json.dumps(
            {"name": "two.gif", "prompt": "a blue square", "seconds": 0, "seed": 2, "sampling": {"steps": 1}}
        )
        + "\n"
    )
    out = tmp_path / "out" / "new"  # made once every job has been checked
    assert cli.main(["generate", "--model", str(model_dir), "--batch", str(jobs), "--out-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["one.mp4", "two.gif"]
    assert video.read_metadata(out / "two.gif")["seed"] == 2


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"prompt": "a", "colour": 1}'], "unknown request key"),
        (['{"prompt": "a", "name": "../x"}'], "not valid"),
        (['{"prompt": "a", "name": "x"}', '{"prompt": "b", "name": "x"}'], "used twice"),
        (["not json"], "line 1: not valid JSON"),
        (['{"prompt": "a", "mode": "image", "image": "missing.png"}'], "missing.png"),
        (['{"name": "x"}'], "a prompt is needed"),
        ([], "no jobs"),
    ],
)
def test_cli_batch_refuses_bad_files_before_loading(tmp_path, capsys, lines, message):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join(lines))
    out = tmp_path / "out"
    out.mkdir()
    # no --model: the default model is never loaded, the file is refused first
    assert cli.main(["generate", "--batch", str(jobs), "--out-dir", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not any(out.iterdir())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["a", "-o", "x.avi"], "unknown extension"),
        (["a", "-o", "x.mp4", "--width", "30"], "multiples of 16"),
        (["a", "-o", "x.mp4", "--guidance", "-2"], "guidance"),
        (["a", "-o", "x.mp4", "--guidance-until", "2"], "guidance-until 2 is not valid"),
        (["a", "-o", "x.mp4", "--image", "nope.png"], "nope.png"),
        (["a", "-o", "x.mp4", "--strength", "0.5"], "--strength goes with --edit"),
        (["a"], "-o/--output is required"),
    ],
)
def test_cli_refuses_bad_input_before_compute(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    try:
        code = cli.main(["generate", *argv])
    except SystemExit as e:  # argparse refuses bad option values itself
        code = e.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_export_makes_a_half_size_model_that_generates_the_same(model_dir, tmp_path):
    out = tmp_path / "shipped"
    assert cli.main(["export", str(model_dir), str(out), "--name", "mine"]) == 0
    size = lambda d: sum(f.stat().st_size for f in d.glob("*.safetensors"))  # noqa: E731
    assert size(out) < 0.6 * size(model_dir)
    a = load(model_dir).generate("a red circle", seconds=1, **FAST).frames.astype(int)
    shipped = load(out)
    assert shipped.config.name == "mine"
    b = shipped.generate("a red circle", seconds=1, **FAST).frames.astype(int)
    assert np.abs(a - b).mean() < 1.0  # float16 storage, float32 compute
    assert cli.main(["export", str(model_dir), str(out)]) == 2  # never over an existing model


def test_int8_transformer_generates_nearly_the_same(model_dir):
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    q = load(model_dir, int8=True)
    assert any(isinstance(m, QLinear) for m in q.dit.modules())
    a = load(model_dir).generate("a red circle", seconds=1, **FAST).frames.astype(int)
    b = q.generate("a red circle", seconds=1, **FAST).frames.astype(int)
    assert a.shape == b.shape and np.abs(a - b).mean() < 8


def test_cli_size_is_the_apis_spelling_of_width_and_height(model_dir, tmp_path, capsys):
    out = tmp_path / "wide.png"
    args = ["generate", "a red circle", "--model", str(model_dir), "--seconds", "0", "--steps", "1"]
    assert cli.main([*args, "--size", "48x32", "-o", str(out)]) == 0
    assert video.read(out).frames.shape[1:3] == (32, 48)
    assert "(1 frame, 48x32" in capsys.readouterr().out
    assert cli.main([*args, "--size", "48x32", "--width", "64", "-o", str(out)]) == 2
    assert "not both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([*args, "--size", "48by32", "-o", str(out)])
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith("nanosora generate: error: argument --size")  # the error first
    assert len(err.splitlines()) == 2 and "--help" in err.splitlines()[1]


def test_generated_clips_last_what_was_asked(model):
    for seconds, fps in [(1.5, 8), (2, 12), (1, 4)]:
        v = model.generate("a red circle moves right", seconds=seconds, fps=fps, steps=1, width=32, height=32)
        assert len(v.frames) == seconds * fps and v.seconds == seconds
