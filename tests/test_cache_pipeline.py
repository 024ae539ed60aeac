"""The latent cache and the generation pipeline, end to end on tiny models."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from nanosora import modeldir
from nanosora.config import VAE_PRESETS
from nanosora.model import load
from nanosora.networks.dit import DIT_PRESETS, DiT
from nanosora.training import cache, data, train
from nanosora.training.train_dit import train_dit
from nanosora.training.train_vae import train_vae

BUCKETS = (data.Bucket(32, 32, 5, 1.0), data.Bucket(64, 32, 1, 1.0))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny autoencoder, a cache built with it, and a tiny transformer trained on that cache."""
    root = tmp_path_factory.mktemp("model")
    cfg = train.TrainConfig(steps=1, batch=2, lr=1e-3, warmup=1, ckpt_every=1)
    vae = train_vae(root / "vae", VAE_PRESETS["tiny"], cfg, buckets=BUCKETS, progress=False)
    src = data.make_source("flatland", for_text=True)
    cache.build(
        root / "cache",
        modeldir.load_vae(root / "vae"),
        src,
        n=6,
        shard_size=4,
        buckets=BUCKETS,
        progress=False,
    )
    lc = cache.LatentCache(root / "cache")
    dcfg = train.TrainConfig(steps=2, batch=2, lr=1e-3, warmup=1, ckpt_every=2)
    out = root / "model"
    base = dataclasses.replace(modeldir.read_config(root / "vae"), name="tiny")
    cfg = DIT_PRESETS["tiny"]
    train_dit(out, cfg, dcfg, lc, base=base, progress=False)
    (out / "vae.safetensors").write_bytes((root / "vae" / "vae.safetensors").read_bytes())
    return root, vae


def test_cache_shards_hold_latents_text_and_captions(model_dir):
    root, _ = model_dir
    shards = sorted((root / "cache").glob("shard-*.safetensors"))
    assert [s.name for s in shards] == ["shard-00000.safetensors", "shard-00001.safetensors"]
    lc = cache.LatentCache(root / "cache")
    assert len(lc) == 6 and lc.latent_channels == 4 and lc.text_dim == 384
    lat, text, mask, caps = lc.batch(3, seed=0, step=0)
    assert lat.shape[0] == text.shape[0] == mask.shape[0] == len(caps) == 3
    assert all(c.startswith("On a") for c in caps)  # detailed Flatland captions
    assert text.dtype == torch.float32 and mask.any(1).all()


def test_cached_latents_equal_the_encoder_output(model_dir):
    root, _ = model_dir
    vae = modeldir.load_vae(root / "vae")
    from safetensors import safe_open

    with safe_open(str(root / "cache" / "shard-00000.safetensors"), "pt") as f:
        lat = f.get_tensor("latents")
        bucket = data.Bucket(**json.loads(f.metadata()["bucket"]))
    rng = np.random.default_rng([0, 0])
    data.pick_bucket(BUCKETS, rng)
    first = data.make_source("flatland", for_text=True).sample(rng, bucket)
    with torch.no_grad():
        torch.testing.assert_close(vae.encode(data.to_batch([first]))[0], lat[0], atol=1e-5, rtol=1e-5)


def test_cache_resumes_and_shards_across_ranks(model_dir, tmp_path, monkeypatch):
    root, _ = model_dir
    vae = modeldir.load_vae(root / "vae")
    src = data.make_source("flatland", for_text=True)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    written = cache.build(tmp_path, vae, src, n=9, shard_size=3, buckets=BUCKETS, progress=False)
    assert [p.name for p in written] == ["shard-00001.safetensors"]  # rank 1 of 2 writes shard 1 of 0-2
    monkeypatch.setenv("RANK", "0")
    assert [
        p.name for p in cache.build(tmp_path, vae, src, n=9, shard_size=3, buckets=BUCKETS, progress=False)
    ] == [
        "shard-00000.safetensors",
        "shard-00002.safetensors",
    ]
    # everything is there now: a rerun writes nothing
    assert cache.build(tmp_path, vae, src, n=9, shard_size=3, buckets=BUCKETS, progress=False) == []


def test_empty_cache_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no cache shards"):
        cache.LatentCache(tmp_path)


def test_generate_is_deterministic_and_carries_provenance(model_dir, tmp_path):
    root, _ = model_dir
    m = load(root / "model")
    a = m.generate("a red circle moves right", width=32, height=32, frames=5, steps=2, seed=1)
    b = m.generate("a red circle moves right", width=32, height=32, frames=5, steps=2, seed=1)
    c = m.generate("a red circle moves right", width=32, height=32, frames=5, steps=2, seed=2)
    assert a.frames.shape == (5, 32, 32, 3) and a.frames.dtype == np.uint8
    assert np.array_equal(a.frames, b.frames) and not np.array_equal(a.frames, c.frames)
    assert a.metadata["seed"] == 1 and a.metadata["caption"].startswith("On a")  # expanded
    img = m.generate("a blue square", width=48, height=32, frames=1, steps=1, seed=0)
    assert img.frames.shape == (1, 32, 48, 3)
    path = a.save(tmp_path / "a.mp4")
    from nanosora.video import read_metadata

    assert read_metadata(path)["prompt"] == "a red circle moves right"


def test_generate_refuses_bad_settings_before_any_compute(model_dir):
    root, _ = model_dir
    m = load(root / "model")
    with pytest.raises(ValueError, match="multiples of 16"):
        m.generate("x", width=40, height=32, frames=5)
    with pytest.raises(ValueError, match="frames 0 is not valid"):
        m.generate("x", frames=0)
    assert m.generate("x", width=32, height=32, frames=6, steps=1).frames.shape[0] == 6  # any length
    with pytest.raises(ValueError, match="guidance"):
        m.generate("x", guidance=-1)


def test_dit_trains_on_the_fly_without_a_cache(model_dir, tmp_path):
    root, _ = model_dir
    src = cache.OnTheFly(
        modeldir.load_vae(root / "vae"), data.make_source("flatland", for_text=True), BUCKETS
    )
    lat, text, mask, caps = src.batch(2, seed=0, step=0)
    assert lat.shape[:2] == (2, 4) and text.shape[0] == 2 and len(caps) == 2
    cfg = train.TrainConfig(steps=2, batch=2, lr=1e-3, warmup=1, ckpt_every=2)
    torch.manual_seed(0)
    start = DiT(DIT_PRESETS["tiny"]).state_dict()
    trained = train_dit(tmp_path, DIT_PRESETS["tiny"], cfg, src, progress=False)
    rows = [json.loads(r) for r in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r][-1] == 2
    assert any(not torch.equal(v, trained.state_dict()[k]) for k, v in start.items())  # it learned
    modeldir.load_weights(tmp_path / "dit.safetensors", DiT(trained.cfg))  # saved, strictly loadable


def test_missing_text_encoder_is_a_clear_error(tmp_path):
    from nanosora.networks.text import TextEncoderError, resolve

    with pytest.raises(TextEncoderError, match="not a local transformers model folder"):
        resolve(str(tmp_path / "no-such-model"))


def test_world_benchmark_writes_table_json_and_samples(model_dir, tmp_path, capsys):
    from nanosora import cli

    root, _ = model_dir
    args = ["eval", "--model", str(root / "model"), "--suite", "single", "--suite", "wide_tall"]
    assert cli.main([*args, "--n", "2", "--steps", "1", "--out", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"single", "wide_tall"} and out["single"]["total"] == 2
    assert 0 <= out["single"]["rate"] <= 1
    saved = json.loads((tmp_path / "world_benchmark.json").read_text())
    assert [c["size"] for c in saved["wide_tall"]["cases"]] == ["128x64", "64x128"]
    assert (tmp_path / "samples.png").stat().st_size > 0
    with pytest.raises(SystemExit) as refused:  # refused by the parser, naming the suites
        cli.main(["eval", "--model", str(root / "model"), "--suite", "nope"])
    assert refused.value.code == 2 and "two_objects" in capsys.readouterr().err


def test_a_model_records_the_words_of_its_training_captions(model_dir):
    from nanosora import vocabulary

    root, _ = model_dir
    lc = cache.LatentCache(root / "cache")
    words = {w for g in lc.groups for c in g.captions for w in vocabulary.words(c)}
    vocab = modeldir.read_config(root / "model").vocabulary
    assert set(vocab) == words and list(vocab) == sorted(vocab) and "background" in vocab
