"""`nanosora eval vae`: figures keyed by data set, on a tiny model."""

from __future__ import annotations

import json

import pytest
import torch

from nanosora import cli
from nanosora.config import VAE_PRESETS
from nanosora.evaluation.eval_vae import evaluate, flatland_clips, table
from nanosora.training import train
from nanosora.training.train_vae import train_vae


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("vae")
    from nanosora.training import data

    cfg = train.TrainConfig(steps=1, batch=1, lr=1e-3, warmup=1, ckpt_every=1)
    train_vae(d, VAE_PRESETS["tiny"], cfg, buckets=(data.Bucket(32, 32, 1),), progress=False)
    return d


def test_held_out_clips_are_fixed_and_sized():
    a = flatland_clips(2, 128, 64)
    b = flatland_clips(2, 128, 64)
    assert a[0].shape == (1, 3, 17, 64, 128)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_eval_json_is_keyed_by_data_set(vae_dir, capsys):
    assert cli.main(["eval", "vae", "--model", str(vae_dir), "--n", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"flatland", "real_video", "photos"}
    for r in out.values():
        assert 0 < r["psnr"] < 100 and -1 <= r["ssim"] <= 1
    assert set(out["flatland"]["by_aspect"]) == {"1:1", "2:1", "1:2"}
    assert out["real_video"]["clips"] == 3 and out["photos"]["clips"] == 3


def test_identity_scores_infinite_psnr():
    class Identity(torch.nn.Module):
        def encode(self, x):
            return x

        def decode(self, z, tile=None):
            return z

    r = evaluate(Identity(), n=1, real=False)
    assert r["flatland"]["psnr"] == float("inf") and r["flatland"]["ssim"] == pytest.approx(1.0)
    assert "flatland" in table(r)


def test_reference_through_the_autoencoder_is_its_ceiling(vae_dir, capsys):
    base = ["eval", "--reference", "--suite", "single", "--n", "2", "--json"]
    assert cli.main(base) == 0
    truth = json.loads(capsys.readouterr().out)["single"]
    assert truth["rate"] == 1.0  # the renderer's own clips pass
    # an autoencoder trained for one step cannot carry a scene: its ceiling is far lower
    assert cli.main([*base, "--through-vae", "--model", str(vae_dir)]) == 0
    through = json.loads(capsys.readouterr().out)["single"]
    assert through["total"] == 2 and through["check_rate"] < truth["check_rate"]
    # the option only means something for ground truth
    assert cli.main(["eval", "--through-vae", "--model", str(vae_dir)]) == 2
