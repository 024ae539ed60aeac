"""Per-object layouts (layout.py): Flatland's exact boxes for training, the conditioning
bundle that carries them, the transformer that reads them, the planner that makes them,
and generation that takes them from the planner alone."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from nanosora import modeldir
from nanosora.networks.conditioning import Conditioning
from nanosora.networks.dit import DIT_PRESETS, DiT
from nanosora.networks.layout import Layout, latent_boxes
from nanosora.training import cache, data
from nanosora.training.objective import check_objective, noised_batch
from nanosora.training.train_dit import DiTTrainConfig
from nanosora.world.layout import clip_layout, object_sentences
from nanosora.world.scene import Obj, Scene, Shot
from tests.helpers import FakeCache, fill_zeros, make_tiny_model

LAYOUT_DIT = dataclasses.replace(DIT_PRESETS["tiny"], layout=True)


def one(box, frames=2, k=1):
    return Layout(
        torch.ones(1, k, 384), torch.tensor(box, dtype=torch.float32).expand(1, k, frames, 4).clone()
    )


def test_coverage_is_the_share_of_each_token_cell_a_box_covers():
    cov = one([0.0, 0.0, 0.5, 0.25]).coverage((2, 4, 4)).reshape(2, 4, 4)
    assert cov[0, 0].tolist() == [1, 1, 0, 0] and cov[0, 1:].sum() == 0
    cov = one([0.125, 0.0, 0.375, 0.25]).coverage((2, 4, 4)).reshape(2, 4, 4)
    assert cov[0, 0].tolist() == [0.5, 0.5, 0, 0]
    empty = one([0.6, 0.6, 0.6, 0.9]).coverage((2, 4, 4))  # no width: out of view
    assert empty.sum() == 0
    with pytest.raises(ValueError, match="latent frames"):
        one([0, 0, 1, 1], frames=3).coverage((2, 4, 4))


def test_latent_boxes_are_the_union_of_the_frames_each_latent_frame_holds():
    boxes = np.zeros((1, 5, 4), np.float32)
    for i in range(5):
        boxes[0, i] = [0.1 * i, 0.2, 0.1 * i + 0.2, 0.4]
    boxes[0, 4] = 0  # out of view in the last frame
    lat = latent_boxes(boxes, 2, 4)
    np.testing.assert_allclose(lat[0, 0], [0.0, 0.2, 0.2, 0.4])
    np.testing.assert_allclose(lat[0, 1], [0.1, 0.2, 0.5, 0.4])


def test_flatland_boxes_follow_the_motion_and_the_shots():
    mover = Obj("red", "square", "medium", "moves right", x=0.3, y=0.5)
    still = Obj("blue", "circle", "small", "stays still", x=0.7, y=0.2)
    scene = Scene([Shot([mover, still], seconds=1.0), Shot([still])])
    lat = clip_layout(scene, 2.0, 0, 17, 8, 4)  # objects of both shots, 5 latent frames
    assert lat.shape == (3, 5, 4)
    cx = (lat[0, :, 0] + lat[0, :, 2]) / 2
    assert cx[0] < cx[1] < cx[2]  # the mover moves right in the first shot
    assert (lat[0, 3:] == 0).all() and (lat[2, :2] == 0).all()  # each object only in its shot
    assert lat[2, 3:].any() and (lat[:, :, 2:] <= 1).all() and (lat >= 0).all()
    caption = [
        "On a white background, there are two objects.",
        "A red square starts at the center of the frame and moves right.",
        "The red square passes in front of the blue circle.",
        "A blue circle starts at the top right of the frame and stays still.",
    ]
    assert object_sentences(caption) == [1, 3]


def test_the_cache_holds_each_clips_boxes_and_object_sentences(tmp_path):
    from nanosora.config import VAE_PRESETS
    from nanosora.networks.vae import VideoVAE

    torch.manual_seed(0)
    vae = VideoVAE(VAE_PRESETS["tiny"])
    src = data.make_source("flatland", for_text=True)
    buckets = (data.Bucket(32, 32, 5),)
    cache.build(tmp_path / "c", vae, src, n=6, shard_size=3, buckets=buckets, progress=False)
    lc = cache.LatentCache(tmp_path / "c")
    assert lc.has_layouts
    lat, _, _, captions = lc.batch(4, 0, 1)
    layout = lc.layouts(4, 0, 1)
    assert layout.boxes.shape[:3] == (4, layout.emb.shape[1], lat.shape[2])
    from nanosora.networks.text import sentences

    for i, cap in enumerate(captions):  # one embedding and a box track per object sentence
        n = len(object_sentences(sentences(cap)))
        assert (layout.emb[i].abs().sum(-1) > 0).sum() == n
        seen = (layout.boxes[i, :, :, 2] > layout.boxes[i, :, :, 0]).any(-1)
        assert seen[:n].all() and not seen[n:].any()


def test_a_layout_model_starts_as_its_base_and_then_reads_the_layout():
    torch.manual_seed(0)
    base = fill_zeros(DiT(DIT_PRESETS["tiny"]), 0.05).eval()
    m = DiT(LAYOUT_DIT).eval()
    missing, unexpected = m.load_state_dict(base.state_dict(), strict=False)
    assert sorted(missing) == ["layout_proj.bias", "layout_proj.weight"] and not unexpected
    x, t = torch.randn(1, 4, 2, 4, 4), torch.tensor([0.5])
    text, mask = torch.randn(1, 5, 384), torch.ones(1, 5, dtype=torch.bool)
    left = Conditioning(layout=one([0.0, 0.0, 0.5, 1.0]))
    right = Conditioning(layout=one([0.5, 0.0, 1.0, 1.0]))
    with torch.no_grad():
        torch.testing.assert_close(m(x, t, text, mask, left), base(x, t, text, mask))
        m.layout_proj.weight.normal_(0, 0.1)
        assert not torch.allclose(m(x, t, text, mask, left), m(x, t, text, mask, right))
        # a model without a layout projection ignores a layout
        torch.testing.assert_close(base(x, t, text, mask, left), base(x, t, text, mask))


def test_guidance_passes_see_the_layout_in_the_full_pass_only():
    lay = one([0.0, 0.0, 0.5, 0.5], k=2)
    fm = torch.tensor([[1.0, 0.0]])
    c = Conditioning(torch.randn(1, 4, 2, 4, 4), fm, lay)
    p = c.for_passes(("full", "cond", "none"), 2)
    assert p.layout.boxes.shape[0] == 3 and p.latents.shape[0] == 3
    assert p.layout.boxes[0].any() and not p.layout.boxes[1:].any()
    assert p.frame_mask.tolist() == [[1, 0], [1, 0], [0, 0]]
    assert p.rows(1).layout.boxes.shape[0] == 1
    with pytest.raises(ValueError, match="together"):
        Conditioning(latents=torch.zeros(1, 4, 2, 4, 4))


class LayoutCache(FakeCache):
    has_layouts = True

    def layouts(self, batch_size, seed, step, rank=0):
        b = torch.tensor([0.0, 0.0, 0.5, 0.5]).expand(batch_size, 2, self.latents.shape[2], 4)
        return Layout(torch.ones(batch_size, 2, 384), b.clone())


def test_training_drops_the_layout_with_the_text_and_for_its_own_share():
    src = LayoutCache(n=8)
    model = DiT(LAYOUT_DIT)
    lat, text, mask, _ = src.batch(8, 0, 0)
    layout = src.layouts(8, 0, 0)
    cfg = DiTTrainConfig(text_dropout=0.0)
    kept = noised_batch(model, lat, text, mask, src.null_text, (0, 2, 0), cfg, layout=layout)
    assert kept.cond.layout.boxes.any(-1).all()
    none = noised_batch(
        model, lat, text, mask, src.null_text, (0, 2, 0), cfg, layout=layout, layout_dropout=1.0
    )
    assert not none.cond.layout.boxes.any()
    no_text = DiTTrainConfig(text_dropout=1.0)
    assert not noised_batch(
        model, lat, text, mask, src.null_text, (0, 2, 0), no_text, layout=layout
    ).cond.layout.boxes.any()
    plain = noised_batch(model, lat, text, mask, src.null_text, (0, 2, 0), cfg)
    assert torch.equal(plain.x_t, kept.x_t) and torch.equal(plain.t, kept.t)  # the clip's own draws
    with pytest.raises(ValueError, match="layouts"):
        check_objective(DiTTrainConfig(), FakeCache(), LAYOUT_DIT)
    with pytest.raises(ValueError, match="layout_dropout"):
        check_objective(DiTTrainConfig(layout_dropout=1.5), src, LAYOUT_DIT)


def test_a_layout_model_trains_and_its_loss_falls(tmp_path):
    from nanosora.training import train
    from nanosora.training.train_dit import train_dit

    cfg = train.TrainConfig(steps=30, batch=4, lr=3e-3, warmup=2, ckpt_every=30, log_every=1)
    train_dit(tmp_path, LAYOUT_DIT, cfg, LayoutCache(n=4), DiTTrainConfig(layout_dropout=0.0), progress=False)
    import json

    losses = [json.loads(line)["loss"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    sd = modeldir.load_weights(tmp_path / "dit.safetensors", DiT(LAYOUT_DIT)).state_dict()
    assert sd["layout_proj.weight"].abs().sum() > 0  # the layout projection learned


@pytest.fixture(scope="module")
def planner_data():
    from nanosora.networks.text import TextEncoder
    from nanosora.training.train_planner import make_data

    return make_data(40, TextEncoder(), seed=0, progress=False)


def test_the_planner_learns_which_sentences_are_objects_and_where_they_are(tmp_path, planner_data):
    from nanosora.networks.planner import PLANNER_PRESETS
    from nanosora.training import train
    from nanosora.training.train_planner import accuracy, train_planner

    d = planner_data
    assert 0 < d.is_object.mean() < 1 and d.seen.any()
    cfg = dataclasses.replace(PLANNER_PRESETS["tiny"], hidden=64)
    untrained = accuracy(
        train_planner(tmp_path / "a", d, cfg, train.TrainConfig(steps=1, batch=64), False), d
    )
    tcfg = train.TrainConfig(steps=300, batch=64, lr=3e-3, warmup=10, ckpt_every=300)
    trained = accuracy(train_planner(tmp_path / "b", d, cfg, tcfg, False), d)
    assert trained["object_accuracy"] > 0.95 and trained["box_l1"] < untrained["box_l1"] / 2


def _layout_model(tmp_path: Path) -> Path:
    """The tiny model with a layout-reading transformer (random layout weights) and a planner
    whose object head says yes to every sentence."""
    from nanosora.networks.planner import PLANNER_PRESETS, Planner

    path = make_tiny_model(tmp_path, window=9)
    cfg = modeldir.read_config(path)
    cfg = dataclasses.replace(
        cfg, dit=dataclasses.replace(cfg.dit, layout=True), planner=PLANNER_PRESETS["tiny"]
    )
    dit = DiT(cfg.dit)
    dit.load_state_dict(modeldir.load_dit(path).state_dict(), strict=False)
    torch.nn.init.normal_(dit.layout_proj.weight, 0, 0.05)
    modeldir.save_weights(path / "dit.safetensors", dit)
    planner = Planner(cfg.planner)
    torch.nn.init.constant_(planner.is_object.bias, 5.0)
    modeldir.save_weights(path / "planner.safetensors", planner)
    modeldir.write_config(path, cfg)
    return path


def test_generation_plans_with_the_learned_planner_alone_in_every_mode(tmp_path, monkeypatch):
    """No box, coordinate or trajectory comes from the world at generation: its parser, scene
    sampler, physics and ground-truth layouts raise, and every mode still generates (the
    caption is given, so the text-to-text expander is not needed)."""
    from nanosora.model import load
    from nanosora.world import layout as world_layout
    from nanosora.world import parse, sample, scene

    m = load(_layout_model(tmp_path))
    assert m.known_words  # the word list (a sample of captions for a model without one) first
    seen = []
    real = type(m.dit).forward

    def spy(self, x, t, text, text_mask=None, cond=None, **k):
        seen.append(cond is not None and cond.layout is not None and bool(cond.layout.boxes.shape[1]))
        return real(self, x, t, text, text_mask, cond, **k)

    monkeypatch.setattr(type(m.dit), "forward", spy)

    def boom(*a, **k):
        raise AssertionError("the world was asked for a layout at generation")

    for mod, names in (
        (parse, ["scene_from_prompt"]),
        (sample, ["sample_scene", "place"]),
        (scene, ["object_track", "camera_offset"]),
        (world_layout, ["scene_boxes", "clip_layout", "object_boxes"]),
    ):
        for n in names:
            monkeypatch.setattr(mod, n, boom)
    caption = (
        "On a white background, there are two objects. A medium red circle starts at the left of "
        "the frame and moves steadily to the right. A small blue square starts at the top right of "
        "the frame and stays still."
    )
    kw = {"width": 32, "height": 32, "steps": 2, "seed": 0, "expand": False}
    clip = m.generate(caption, seconds=1, **kw)
    assert clip.metadata["layout"] and all(seen)
    words = [o["words"] for o in clip.metadata["layout"]]
    assert any("red circle" in w for w in words) and any("blue square" in w for w in words)
    frame = clip.frames[:1]
    runs = [
        {"image": frame},
        {"video": clip.frames, "extend": "forward"},
        {"video": clip.frames, "strength": 0.5},
        {"connect": (clip.frames, clip.frames)},
        {"loop": True},
    ]
    for extra in runs:
        seen.clear()
        v = m.generate(caption, seconds=1, **kw, **extra)
        assert len(v.frames) and seen and all(seen), extra
    seen.clear()
    shots = [{"prompt": caption, "seconds": 1}, {"prompt": caption, "seconds": 1}]
    v = m.generate(shots=shots, **kw)
    assert len(v.metadata["layout"]) == 2 and all(seen)


def test_a_users_layout_is_checked_field_by_field():
    from nanosora.generation.request import GenerationRequest

    good = [{"words": "a red circle", "keyframes": [{"t": 0, "box": [0.1, 0.1, 0.3, 0.3]}]}]
    req = GenerationRequest(prompt="a red circle", layout=good)
    assert req.layout[0].words == "a red circle" and GenerationRequest.from_json(req.to_json()) == req
    bad = [
        ([], "non-empty list"),
        ([{"words": "", "keyframes": good[0]["keyframes"]}], r"layout\[0\].words"),
        (
            [{"words": "x", "keyframes": [{"t": 0, "box": [0.5, 0.1, 1.2, 0.3]}]}],
            r"layout\[0\].keyframes\[0\].box",
        ),
        ([{"words": "x", "keyframes": [{"t": 0, "box": [0.5, 0.1, 0.4, 0.3]}]}], "x0 < x1"),
        (
            [{"words": "x", "keyframes": [{"t": 1, "box": [0, 0, 1, 1]}, {"t": 0.5, "box": [0, 0, 1, 1]}]}],
            r"keyframes\[1\].t 0.5 is out of order",
        ),
        ([{"words": "x", "keyframes": [{"t": 3, "box": [0, 0, 1, 1]}]}], "past the clip's end at 2 s"),
        ([{"words": "x", "frames": []}], r"layout\[0\] must be"),
    ]
    for layout, message in bad:
        with pytest.raises(ValueError, match=message):
            GenerationRequest(prompt="a red circle", layout=layout)


def test_a_users_layout_is_followed_and_refused_where_it_cannot_be(tmp_path):
    from nanosora.generation.user_layout import parse, plan_of
    from nanosora.model import load

    paths = parse(
        [
            {
                "words": "a red circle",
                "keyframes": [{"t": 0, "box": [0.0, 0.0, 0.2, 0.2]}, {"t": 1, "box": [0.8, 0.0, 1.0, 0.2]}],
            }
        ]
    )
    m = load(_layout_model(tmp_path))
    p = plan_of(paths, m.text_encoder)
    np.testing.assert_allclose(p.boxes_at(np.array([0.0, 0.5, 2.0]))[0, :, 0], [0.0, 0.4, 0.8])
    caption = "On a black background, there is one object. A red circle starts at the left and stays still."
    kw = {"width": 32, "height": 32, "steps": 2, "seed": 0, "expand": False, "seconds": 1}
    v = m.generate(caption, layout=paths, **kw)
    assert v.metadata["layout"][0]["words"] == "a red circle"
    # recorded every latent frame the clip shows, each where the path is at that time
    keys = v.metadata["layout"][0]["keyframes"]
    assert len(keys) == len(range(0, len(v.frames), 4)) >= 2
    assert [k["box"][0] for k in keys] == pytest.approx([0.8 * k["t"] for k in keys])
    with pytest.raises(ValueError, match="names 3 objects"):
        m.generate(caption, layout=paths * 3, **kw)
    (tmp_path / "plain").mkdir()
    plain = load(make_tiny_model(tmp_path / "plain"))
    with pytest.raises(ValueError, match="does not read layouts"):
        plain.generate(caption, layout=paths, **kw)


def test_the_servers_layout_field_is_json_and_its_errors_name_the_field():
    from nanosora.server.api import APIError, layout_field

    text = '[{"words": "a red circle", "keyframes": [{"t": 0, "box": [0, 0, 0.5, 0.5]}]}]'
    assert layout_field(text)[0].boxes == ((0.0, 0.0, 0.5, 0.5),)
    for bad, message in (("not json", "not valid JSON"), ('[{"words": "x", "keyframes": []}]', "keyframes")):
        with pytest.raises(APIError) as e:
            layout_field(bad)
        assert e.value.status == 400 and message in e.value.message and e.value.param == "layout"
