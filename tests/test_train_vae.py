"""Autoencoder training: exact resume, checkpoints, model directories, data errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nanosora import modeldir
from nanosora.config import VAE_PRESETS
from nanosora.training import checkpoint, data, train
from nanosora.training.train_vae import train_vae

SMALL = (data.Bucket(32, 32, 5, 1.0), data.Bucket(64, 32, 1, 1.0))


def tcfg(steps=4, **kw):
    return train.TrainConfig(steps=steps, batch=2, lr=1e-3, warmup=2, ckpt_every=2, log_every=1, **kw)


def test_resume_is_exact(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    full = train_vae(a, VAE_PRESETS["tiny"], tcfg(), buckets=SMALL, progress=False)
    train_vae(b, VAE_PRESETS["tiny"], tcfg(), buckets=SMALL, progress=False, stop_after=2)
    assert [p.name for p in checkpoint.list_checkpoints(b / "checkpoints")] == ["ckpt-00000002.pt"]
    resumed = train_vae(b, VAE_PRESETS["tiny"], tcfg(), buckets=SMALL, progress=False)
    for (k, v), (_, w) in zip(full.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(v, w), k
    la = [r["loss"] for r in map(json.loads, (a / "log.jsonl").read_text().splitlines())]
    lb = [r["loss"] for r in map(json.loads, (b / "log.jsonl").read_text().splitlines())]
    assert la == lb and len(la) == 4


def test_run_folder_is_a_model_directory(tmp_path):
    vae = train_vae(tmp_path, VAE_PRESETS["tiny"], tcfg(steps=2), buckets=SMALL, progress=False)
    assert (tmp_path / "loss.png").stat().st_size > 0
    loaded = modeldir.load_vae(tmp_path)
    cfg = modeldir.read_config(tmp_path).vae
    assert len(cfg.shift) == len(cfg.scale) == 4 and all(s > 0 for s in cfg.scale)
    x = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        mean, _ = vae.encode_dist(x)
        z = loaded.encode(x)
    # the loaded model normalises with the measured statistics
    expected = (mean - torch.tensor(cfg.shift).view(1, 4, 1, 1, 1)) / torch.tensor(cfg.scale).view(
        1, 4, 1, 1, 1
    )
    torch.testing.assert_close(z, expected, atol=1e-5, rtol=1e-5)


class OneClip:
    """A data source that always gives the same clip."""

    def __init__(self):
        self.sample_ = data.FlatlandSource().sample(np.random.default_rng(3), data.Bucket(32, 32, 5))

    def sample(self, rng, bucket):
        return self.sample_


def test_training_reduces_the_loss(tmp_path):
    """Not a quality target (benchmarks/ measures that): the loop must actually learn."""
    assert train.TrainLog(tmp_path, 10**9).rows() == []
    cfg = train.TrainConfig(steps=40, batch=2, lr=3e-3, warmup=3, ckpt_every=40, log_every=1)
    train_vae(tmp_path, VAE_PRESETS["tiny"], cfg, source=OneClip(), buckets=SMALL[:1], progress=False)
    losses = [r["loss"] for r in train.TrainLog(tmp_path, 10**9).rows()]
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3])


def test_corrupted_checkpoint_is_named_and_skipped(tmp_path):
    folder = tmp_path / "ck"
    checkpoint.save(folder, 1, {"step": 1, "w": torch.ones(3)})
    p2 = checkpoint.save(folder, 2, {"step": 2, "w": torch.ones(3)})
    p2.write_bytes(p2.read_bytes()[:50])  # truncated by a crash
    with pytest.raises(checkpoint.CheckpointError, match="ckpt-00000002.pt.*checksum"):
        checkpoint.load(p2)
    with pytest.warns(UserWarning, match="skipping"):
        assert checkpoint.newest(folder)["step"] == 1


def test_keep_last_k(tmp_path):
    for s in range(1, 6):
        checkpoint.save(tmp_path, s, {"step": s}, keep=2)
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["ckpt-00000004.pt", "ckpt-00000005.pt"]


def test_broken_model_directory_errors_name_the_file(tmp_path):
    train_vae(tmp_path, VAE_PRESETS["tiny"], tcfg(steps=2), buckets=SMALL, progress=False)
    w = tmp_path / "vae.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(modeldir.ModelError, match="vae.safetensors"):
        modeldir.load_vae(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(modeldir.ModelError, match="config.json.*not valid JSON"):
        modeldir.load_vae(tmp_path)
    with pytest.raises(modeldir.ModelError, match="not found"):
        modeldir.load_vae(tmp_path / "nowhere")


def test_empty_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no clips found"):
        data.FolderSource(tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        data.FolderSource(tmp_path / "missing")


def test_unreadable_video_is_skipped_with_a_warning_naming_it(tmp_path):
    from nanosora import video

    (tmp_path / "a_broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 20)
    src = data.FolderSource(tmp_path)
    with pytest.raises(ValueError, match="none of its 1 files can be read"):
        src.sample(np.random.default_rng(0), data.Bucket(32, 32, 5), index=0)
    video.write(tmp_path / "b_good.mp4", np.full((6, 32, 32, 3), 90, np.uint8), 8)
    src = data.FolderSource(tmp_path)
    with pytest.warns(UserWarning, match="a_broken.mp4"):
        s = src.sample(np.random.default_rng(0), data.Bucket(32, 32, 5), index=0)
    assert s.frames.shape == (5, 32, 32, 3) and int(s.frames.mean()) in range(85, 96)  # the good one


def test_caption_formats_people_already_have(tmp_path):
    from nanosora import video

    for name in ("a.mp4", "b.mp4", "d.mp4"):
        video.write(tmp_path / name, np.zeros((5, 32, 32, 3), np.uint8), 8)
    video.write(tmp_path / "c.mp4", np.zeros((5, 32, 32, 3), np.uint8), 8)
    (tmp_path / "c.mp4").rename(tmp_path / "c.mov")
    from PIL import Image

    Image.fromarray(np.full((40, 30, 3), 200, np.uint8)).save(tmp_path / "e.png")
    (tmp_path / "metadata.csv").write_text("file_name,text\na.mp4,from the csv\nb.mp4,csv loses\n")
    (tmp_path / "metadata.jsonl").write_text(
        json.dumps({"file_name": "b.mp4", "caption": "from jsonl"}) + "\n"
    )
    (tmp_path / "captions.jsonl").write_text(
        json.dumps({"file": "c.mov", "caption": "nanosora's own"}) + "\n"
    )
    (tmp_path / "d.txt").write_text("a sidecar\n")
    (tmp_path / "e.txt").write_text("a still photo")
    src = data.FolderSource(tmp_path)
    assert [f.name for f in src.files] == ["a.mp4", "b.mp4", "c.mov", "d.mp4", "e.png"]
    assert src.captions == {
        "a.mp4": "from the csv",
        "b.mp4": "from jsonl",
        "c.mov": "nanosora's own",
        "d.mp4": "a sidecar",
        "e.png": "a still photo",
    }
    still = src.sample(np.random.default_rng(0), data.Bucket(32, 32, 5), index=4)
    assert still.frames.shape == (5, 32, 32, 3) and (still.frames == still.frames[0]).all()
    (tmp_path / "metadata.csv").write_text("file_name,words\na.mp4,x\n")
    with pytest.raises(ValueError, match="no caption column"):
        data.FolderSource(tmp_path)


def test_clips_without_a_caption_are_skipped_and_named(tmp_path):
    from nanosora import video

    frames = np.zeros((5, 16, 16, 3), np.uint8)
    for name in ("a", "b", "c"):
        video.write(tmp_path / f"{name}.mp4", frames, 8)
    (tmp_path / "a.txt").write_text("a black frame")
    with pytest.warns(UserWarning, match=r"skipping 2 clip\(s\) with no caption: b.mp4, c.mp4"):
        src = data.FolderSource(tmp_path)
    assert [f.name for f in src.files] == ["a.mp4"]
    assert {src.sample(np.random.default_rng(i), data.Bucket(16, 16, 5)).caption for i in range(4)} == {
        "a black frame"
    }
    (tmp_path / "a.txt").unlink()  # no captions at all: the autoencoder's folder keeps every clip
    assert len(data.FolderSource(tmp_path).files) == 3


def test_folder_of_videos_trains_with_captions(tmp_path):
    from nanosora import video

    rng = np.random.default_rng(0)
    for i in range(2):
        video.write(tmp_path / f"c{i}.mp4", rng.integers(0, 255, (7, 48, 40, 3), dtype=np.uint8), 8)
    (tmp_path / "captions.jsonl").write_text(json.dumps({"file": "c0.mp4", "caption": "noise"}) + "\n")
    src = data.FolderSource(tmp_path)
    s = src.sample(rng, data.Bucket(32, 32, 9), index=0)
    assert s.frames.shape == (9, 32, 32, 3) and s.caption == "noise"
    train_vae(tmp_path / "run", VAE_PRESETS["tiny"], tcfg(steps=2), source=src, buckets=SMALL, progress=False)
    assert (tmp_path / "run" / "vae.safetensors").exists()


def test_bad_captions_file_names_the_line(tmp_path):
    from nanosora import video

    video.write(tmp_path / "a.mp4", np.zeros((5, 32, 32, 3), np.uint8), 8)
    (tmp_path / "captions.jsonl").write_text('{"file": "a.mp4", "caption": "x"}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"captions.jsonl:2"):
        data.FolderSource(tmp_path)


def test_bf16_training_runs_under_autocast_and_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)  # autocast runs anywhere
    runs = {}
    for b in (False, True):
        train_vae(
            tmp_path / str(b), VAE_PRESETS["tiny"], tcfg(steps=2), buckets=SMALL, progress=False, cpu_bf16=b
        )
        runs[b] = [r["loss"] for r in train.TrainLog(tmp_path / str(b), 10**9).rows()]
        assert modeldir.read_config(tmp_path / str(b)).training["vae_train"]["cpu_bf16"] is b
    assert runs[False] != runs[True]  # bf16 did run
    assert all(abs(x / y - 1) < 0.05 for x, y in zip(runs[True], runs[False], strict=True))


def test_bf16_is_refused_on_a_cpu_without_it(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    with pytest.raises(ValueError, match="no native bf16"):
        train_vae(
            tmp_path / "r", VAE_PRESETS["tiny"], tcfg(steps=2), buckets=SMALL, progress=False, cpu_bf16=True
        )
    assert not (tmp_path / "r").exists()  # refused before anything was written
