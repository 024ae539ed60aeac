"""Guidance distillation: the student starts as its teacher, learns the guided velocity, and
samples with one transformer pass per step at the scale the guidance interval gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nanosora import cli, modeldir
from nanosora.generation import pipeline
from nanosora.generation.request import Sampling
from nanosora.model import load
from nanosora.networks import guided
from nanosora.networks.dit import DIT_PRESETS, DiT
from nanosora.networks.guided import GuidedDiT
from nanosora.training import train
from nanosora.training.distill import DistillConfig, distill_loss, draw_scales, student_of, train_distill
from tests.helpers import FakeCache, fill_zeros, make_tiny_model


def tiny_teacher(seed=0):
    torch.manual_seed(seed)
    return fill_zeros(DiT(DIT_PRESETS["tiny"]), 0.05).eval()


def inputs(b=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, 4, 3, 4, 4, generator=g),
        torch.rand(b, generator=g),
        torch.randn(b, 6, 384, generator=g),
        torch.ones(b, 6, dtype=torch.bool),
    )


def test_student_starts_as_its_teacher_and_learns_to_take_the_scale():
    teacher = tiny_teacher()
    student = student_of(teacher).eval()
    assert isinstance(student, GuidedDiT) and not isinstance(teacher, GuidedDiT)
    assert student.cfg == teacher.cfg
    x = inputs()
    with torch.no_grad():
        ref = teacher(*x)
        for g in (1.0, 5.0, 13.0):
            torch.testing.assert_close(student(*x, guidance=torch.full((2,), g)), ref)
        torch.testing.assert_close(student(*x), ref)  # no scale: 1
        student.g_embed[-1].weight.normal_(0, 0.1)
        assert not torch.allclose(
            student(*x, guidance=torch.full((2,), 1.0)), student(*x, guidance=torch.full((2,), 8.0))
        )
    with pytest.raises(TypeError, match="guidance"):  # a plain DiT takes no scale
        teacher(*x, guidance=torch.full((2,), 2.0))
    with pytest.raises(ValueError, match="already guidance-distilled"):
        student_of(student)


def test_the_target_is_the_teachers_guided_velocity():
    cache = FakeCache(shape=(4, 3, 4, 4))
    latents, text, mask, _ = cache.batch(4, 0, 0)

    def loss(teacher, cfg=None):
        cfg = cfg or DistillConfig()
        student = student_of(teacher)
        return distill_loss(student, teacher, latents, text, mask, cache.null_text, (0, 0, 0), cfg).item()

    teacher = tiny_teacher()
    # at scale 1 the target is the teacher's own velocity, which the new student gives
    assert loss(teacher, DistillConfig(p_unguided=1.0)) < 1e-10
    # a teacher blind to the text: both passes agree, so every scale's target is that velocity
    blind = tiny_teacher()
    with torch.no_grad():
        blind.pool_proj.weight.zero_()
        for blk in blind.blocks:
            blk.cross.out.weight.zero_()
            blk.cross.out.bias.zero_()
    assert loss(blind) < 1e-10
    # a teacher that reads the text: scales above 1 ask the student for more than it gives
    assert loss(teacher) > 1e-4


def test_scales_cover_the_range_and_one():
    g = draw_scales(4000, np.random.default_rng(0), 0.2).numpy()
    assert g.min() == 1.0 and 12.5 < g.max() <= 13.0
    assert 0.15 < (g == 1.0).mean() < 0.25


def test_one_pass_guidance_takes_the_scale_while_guidance_lasts():
    seen = []
    v = guided.velocity(lambda x, t, g: seen.append((t, g)) or x * 0, 8.0, until=0.45)
    for t in (0.9, 0.5, 0.45, 0.2):
        v(torch.zeros(1), t)
    assert seen == [(0.9, 8.0), (0.5, 8.0), (0.45, 1.0), (0.2, 1.0)]
    student = GuidedDiT(DIT_PRESETS["tiny"])
    assert guided.one_pass_serves(student) and guided.one_pass_serves(student, 1.0, has_cond=True)
    assert not guided.one_pass_serves(student, 2.0, has_cond=True)  # image guidance needs its passes
    assert not guided.one_pass_serves(DiT(DIT_PRESETS["tiny"]))


@pytest.fixture(scope="module")
def distilled_dir(tmp_path_factory):
    teacher = make_tiny_model(tmp_path_factory.mktemp("teacher"))
    out = tmp_path_factory.mktemp("student")
    tcfg = train.TrainConfig(steps=3, batch=2, lr=1e-3, warmup=1, ckpt_every=3)
    train_distill(out, teacher, tcfg, FakeCache(shape=(4, 3, 4, 4)), progress=False)
    return out


def test_distilled_model_directory_samples_in_one_pass_per_step(distilled_dir):
    assert (distilled_dir / "vae.safetensors").is_file()
    cfg = modeldir.read_config(distilled_dir)
    assert cfg.guidance_distilled and cfg.training["distill_train"]["step"] == 3
    model = load(distilled_dir)
    assert model.guidance_passes(8.0) == 1 and model.guidance_passes(8.0, one_pass_guidance=False) == 2
    calls = []
    real = type(model.dit).forward

    def recording(self, x, t, *a, **k):
        g = a[3] if len(a) > 3 else k.get("guidance")
        calls.append((x.shape[0], None if g is None else g.tolist()))
        return real(self, x, t, *a, **k)

    text, null = model.encode_text(["a red circle moves right"]), model.encode_text([""])
    shape = (4, 3, 4, 4)
    schedule = pipeline.schedule_for(6, pipeline.shift_of(model.dit, shape))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(model.dit), "forward", recording)
        one = pipeline.sample_latents(
            model.dit, text, null, shape, [0], Sampling(steps=6, guidance=8.0, guidance_until=0.45)
        )
        assert calls == [(1, [8.0 if t > 0.45 else 1.0]) for t in schedule[:-1]]
        calls.clear()
        sp = Sampling(steps=6, guidance=8.0, guidance_until=0.45, one_pass_guidance=False)
        two = pipeline.sample_latents(model.dit, text, null, shape, [0], sp)
        assert calls == [(2, None) if t > 0.45 else (1, None) for t in schedule[:-1]]
    assert not torch.allclose(one, two)
    v = model.generate("a red circle", steps=2, width=32, height=32, seed=0)
    assert v.metadata["guidance_passes"] == 1


def test_cli_distill_refuses_a_missing_cache_or_teacher(distilled_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "train",
        "distill",
        "--teacher",
        str(distilled_dir),
        "--cache",
        str(tmp_path / "none"),
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 2
    assert "none" in capsys.readouterr().err
    argv = [
        "train",
        "distill",
        "--teacher",
        str(tmp_path / "nobody"),
        "--cache",
        str(tmp_path),
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 2
    assert "nobody" in capsys.readouterr().err
    assert not out.exists()  # nothing written


def test_cli_generate_records_the_passes_and_can_ask_for_two(distilled_dir, tmp_path):
    from nanosora import video

    base = ["generate", "a red circle", "--model", str(distilled_dir), "--width", "32", "--height", "32"]
    base += ["--steps", "2", "--seconds", "1"]
    one, two = tmp_path / "one.mp4", tmp_path / "two.mp4"
    assert cli.main([*base, "-o", str(one)]) == 0
    assert cli.main([*base, "-o", str(two), "--two-pass-guidance"]) == 0
    assert video.read_metadata(one)["guidance_passes"] == 1
    assert video.read_metadata(two)["guidance_passes"] == 2
    assert not np.array_equal(video.read(one).frames, video.read(two).frames)
