"""Reference frames (reference.py): a frame from across a cut or from long before, shown to
a window beside its temporal context; cached, trained on, and given by generation."""

import dataclasses

import numpy as np
import pytest
import torch

from nanosora import modelconfig, modeldir
from nanosora.generation import pipeline, reference
from nanosora.model import load
from nanosora.networks.conditioning import Conditioning
from nanosora.networks.dit import DIT_PRESETS, DiT
from nanosora.training import cache, data
from nanosora.training.objective import batch_refs, given_weight, noised_batch
from nanosora.training.train_dit import DiTTrainConfig, train_dit
from nanosora.world.sample import after_cut, sample_scene
from tests.helpers import FakeCache, fill_zeros, make_tiny_model


def test_after_a_cut_the_same_objects_stand_still_somewhere_else():
    moved = 0
    for k in range(20):
        scene = sample_scene(np.random.default_rng(k))
        cut = after_cut(scene, np.random.default_rng(100 + k))
        assert cut.background == scene.background and len(cut.shots) == 1
        before, after = scene.objects, cut.objects
        assert [(o.colour, o.shape, o.size) for o in after] == [(o.colour, o.shape, o.size) for o in before]
        assert all(o.motion == "stays still" and not o.trail for o in after)
        moved += any(abs(a.x - b.x) + abs(a.y - b.y) > 1e-3 for a, b in zip(after, before, strict=True))
    assert moved == 20


def test_prepend_marks_references_before_the_clip():
    lat, refs = torch.randn(2, 4, 3, 2, 2), torch.randn(2, 4, 1, 2, 2)
    fm = torch.tensor([[1.0, 0, 0], [0, 0, 0]])
    out, mask = reference.prepend(lat, refs, fm)
    assert (
        out.shape == (2, 4, 4, 2, 2) and torch.equal(out[:, :, :1], refs) and torch.equal(out[:, :, 1:], lat)
    )
    assert mask.tolist() == [[-1.0, 1, 0, 0], [-1.0, 0, 0, 0]]
    assert given_weight(mask)[:, 0, :, 0, 0].tolist() == [[0, 0, 1, 1], [0, 1, 1, 1]]
    with pytest.raises(ValueError, match="do not fit"):
        reference.prepend(lat, torch.randn(2, 4, 1, 3, 2), fm)


def test_a_reference_frame_is_seen_by_the_transformer_and_is_not_a_given_frame():
    torch.manual_seed(0)
    dit = fill_zeros(DiT(DIT_PRESETS["tiny"]), 0.05).eval()
    x, text, tm = torch.randn(1, 4, 3, 4, 4), torch.randn(1, 5, 384), torch.ones(1, 5, dtype=torch.bool)
    cond = torch.randn(1, 4, 3, 4, 4)
    t = torch.tensor([0.5])
    with torch.no_grad():
        as_ref = dit(x, t, text, tm, Conditioning(cond, torch.tensor([[-1.0, 0, 0]])))
        as_given = dit(x, t, text, tm, Conditioning(cond, torch.tensor([[1.0, 0, 0]])))
        other = cond + torch.randn_like(cond) * (torch.arange(3) == 0).view(1, 1, 3, 1, 1)
        other_ref = dit(x, t, text, tm, Conditioning(other, torch.tensor([[-1.0, 0, 0]])))
    assert not torch.allclose(as_ref, as_given)  # the mark tells them apart
    assert not torch.allclose(as_ref[:, :, 1:], other_ref[:, :, 1:])  # what the reference shows matters


def test_the_cache_holds_a_reference_frame_per_clip_and_leaves_the_clips_as_they_were(tmp_path, monkeypatch):
    from nanosora.config import VAE_PRESETS
    from nanosora.networks.vae import VideoVAE

    torch.manual_seed(0)
    vae = VideoVAE(VAE_PRESETS["tiny"])
    src = data.make_source("flatland", for_text=True)
    buckets = (data.Bucket(32, 32, 5), data.Bucket(64, 32, 5))
    cache.build(
        tmp_path / "with", vae, src, n=6, shard_size=3, text_encoder=None, buckets=buckets, progress=False
    )
    lc = cache.LatentCache(tmp_path / "with")
    assert lc.has_references
    for g in lc.groups:
        assert g.refs.shape == (len(g.latents), g.latents.shape[1], 1, *g.latents.shape[3:])
    for step in range(4):  # the references of exactly the clips batch() draws
        lat, *_ = lc.batch(2, 0, step)
        refs = lc.references(2, 0, step)
        assert refs.shape[3:] == lat.shape[3:] and len(refs) == 2
    monkeypatch.setattr(reference, "render", lambda *a: None)
    cache.build(
        tmp_path / "without", vae, src, n=6, shard_size=3, text_encoder=None, buckets=buckets, progress=False
    )
    plain = cache.LatentCache(tmp_path / "without")
    assert not plain.has_references
    for a, b in zip(lc.groups, plain.groups, strict=True):
        assert torch.equal(a.latents, b.latents) and a.captions == b.captions
    with pytest.raises(ValueError, match="no reference frames"):
        plain.references(2, 0, 0)


class RefCache(FakeCache):
    has_references = True

    def references(self, batch_size, seed, step, rank=0):
        return torch.full((batch_size, self.latents.shape[1], 1, *self.latents.shape[3:]), 0.5)


def test_a_batch_with_references_keeps_the_clips_own_draws():
    src = RefCache(n=4)
    model = DiT(DIT_PRESETS["tiny"])
    lat, text, mask, _ = src.batch(4, 0, 0)
    cfg = DiTTrainConfig(ref_p=1.0)
    plain = noised_batch(model, lat, text, mask, src.null_text, (0, 3, 0), cfg)
    refs = batch_refs(src, 4, (0, 3, 0), cfg.ref_p)
    withr = noised_batch(model, lat, text, mask, src.null_text, (0, 3, 0), cfg, refs)
    assert withr.x_t.shape[2] == lat.shape[2] + 1
    assert torch.equal(withr.x_t[:, :, 1:], plain.x_t) and torch.equal(withr.target[:, :, 1:], plain.target)
    wfm, pfm = withr.cond.frame_mask, plain.cond.frame_mask
    assert torch.equal(wfm[:, 1:], pfm) and (wfm[:, 0] == -1).all()
    assert torch.equal(withr.cond.latents[:, :, :1], refs) and torch.equal(withr.t, plain.t)
    assert batch_refs(src, 4, (0, 3, 0), 0.0) is None
    drawn = [batch_refs(src, 4, (0, s, 0), 0.5) is not None for s in range(200)]
    assert 70 < sum(drawn) < 130


def test_context_noise_noises_given_frames_only():
    src = FakeCache(n=8)
    model = DiT(DIT_PRESETS["tiny"])
    lat, text, mask, _ = src.batch(8, 0, 0)
    clean = noised_batch(model, lat, text, mask, src.null_text, (0, 5, 0), DiTTrainConfig())
    noisy = noised_batch(
        model, lat, text, mask, src.null_text, (0, 5, 0), DiTTrainConfig(), context_noise=0.25
    )
    given = clean.cond.frame_mask.bool()[:, None, :, None, None].expand_as(lat)
    assert given.any()
    assert torch.equal(noisy.cond.latents[~given], lat[~given]) and torch.equal(clean.cond.latents, lat)
    diff = (noisy.cond.latents - lat)[given]
    assert diff.abs().max() > 0 and torch.equal(noisy.x_t, clean.x_t)


@pytest.mark.parametrize(
    "objective,message",
    [
        (DiTTrainConfig(ref_p=0.5), "reference frames .* this data has none"),
        (DiTTrainConfig(ref_p=1.5), "ref_p 1.5 is not valid"),
        (DiTTrainConfig(context_noise=1.5), "context_noise 1.5 is not valid"),
    ],
)
def test_an_objective_that_cannot_be_trained_is_refused_before_anything_is_written(
    tmp_path, objective, message
):
    from nanosora.training import train

    out = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        train_dit(out, DIT_PRESETS["tiny"], train.TrainConfig(steps=1, batch=2), FakeCache(), objective)
    assert not out.exists()


def test_a_model_trained_with_references_says_so(tmp_path):
    from nanosora.training import train

    (tmp_path / "m").mkdir()
    base = modelconfig.build(modeldir.read_config(make_tiny_model(tmp_path / "m")).vae, name="r")
    train_dit(
        tmp_path / "run", DIT_PRESETS["tiny"], train.TrainConfig(steps=2, batch=2, ckpt_every=2),
        RefCache(), DiTTrainConfig(ref_p=1.0), base=base, progress=False,
    )  # fmt: skip
    cfg = modeldir.read_config(tmp_path / "run")
    assert cfg.references and modelconfig.from_json(cfg.to_json()).references
    with pytest.raises(ValueError, match="'references' must be true or false"):
        modelconfig.from_json(cfg.to_json() | {"references": "yes"})
    assert not modeldir.read_config(tmp_path / "m").references


def _spy(monkeypatch):
    seen = []
    real = pipeline.sample_latents

    def spy(*a, refs=None, **kw):
        seen.append(None if refs is None else tuple(refs.shape))
        return real(*a, refs=refs, **kw)

    monkeypatch.setattr(pipeline, "sample_latents", spy)
    return seen


def test_later_windows_see_the_first_frame_and_later_shots_the_shot_before(tmp_path, monkeypatch):
    (tmp_path / "m").mkdir()
    (tmp_path / "p").mkdir()
    path = make_tiny_model(tmp_path / "m", window=9)
    cfg = modeldir.read_config(path)
    modeldir.write_config(path, dataclasses.replace(cfg, references=True))
    m = load(path)
    seen = _spy(monkeypatch)
    v = m.generate("a red circle bounces", frames=25, width=32, height=32, steps=2, seed=0)
    assert len(v.frames) == 25
    assert seen[0] is None and len(seen) > 1 and all(s is not None and s[2] == 1 for s in seen[1:])
    seen.clear()
    story = [
        {"prompt": "a red circle stays still", "seconds": 1},
        {"prompt": "the red circle bounces", "seconds": 1},
    ]
    m.generate(shots=story, width=32, height=32, steps=2, seed=0)
    assert seen[0] is None and seen[-1] is not None  # the second shot is shown the first
    seen.clear()
    src = np.zeros((9, 32, 32, 3), np.uint8)
    m.generate(
        "the red circle spins", story=["a red circle"], after=src, width=32, height=32, steps=2, seed=0
    )
    assert seen and all(s is not None for s in seen)  # after a cut, every window is shown the source
    seen.clear()
    edit = m.generate(
        "a blue circle", video=src, strength=0.5, after=src, width=32, height=32, steps=2, seed=0
    )
    assert len(edit.frames) == len(src) and seen and all(s is not None for s in seen)
    seen.clear()
    plain = load(make_tiny_model(tmp_path / "p", window=9))  # a model not trained with them: none
    plain.generate("a red circle bounces", frames=25, width=32, height=32, steps=2, seed=0)
    assert seen and all(s is None for s in seen)
