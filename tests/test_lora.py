"""LoRA adapters with PEFT: diffusers key names, a refused foreign base, scales, fuse and
unfuse, training from a folder of clips with exact resume, and --lora in generate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from nanosora import cli, modeldir, video
from nanosora.model import load
from nanosora.networks import lora
from nanosora.world.parse import scene_from_prompt
from nanosora.world.render import render
from tests.helpers import make_tiny_model


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("base"))


def velocity(dit, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, dit.cfg.latent_channels, 3, 4, 4, generator=g)
    text, mask = torch.randn(1, 5, 384, generator=g), torch.ones(1, 5, dtype=torch.bool)
    with torch.no_grad():
        return dit(x, torch.tensor([0.5]), text, mask)


def trained_adapter(dit, folder, base_dir, seed=0):
    """An adapter with random (non-zero) weights, saved in `folder`."""
    lora.add(dit, lora.LoraSettings(rank=4, alpha=4.0))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in dit.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    info = lora.AdapterInfo(lora.LoraSettings(rank=4, alpha=4.0), lora.base_sha256(base_dir), "tiny", 10)
    return lora.save(folder, dit, info)


def test_adapter_file_has_diffusers_keys_and_settings(base, tmp_path):
    f = trained_adapter(modeldir.load_dit(base), tmp_path, base)
    assert f.name == "pytorch_lora_weights.safetensors"
    with safe_open(str(f), "pt") as sf:
        keys = list(sf.keys())
        assert sf.metadata() == {"format": "pt"}
    assert keys and all(k.startswith("transformer.blocks.") for k in keys)
    assert {k.rsplit(".", 2)[-2] for k in keys} == {"lora_A", "lora_B"}
    assert any(".attn.qkv.lora_A.weight" in k for k in keys) and not any(".ada." in k for k in keys)
    settings = json.loads((tmp_path / "lora_config.json").read_text())
    assert settings["rank"] == 4 and settings["base"]["dit_sha256"] == lora.base_sha256(base)


def test_scales_fuse_and_unfuse_change_the_output_as_they_should(base, tmp_path):
    plain = modeldir.load_dit(base)
    want = velocity(plain)
    trained_adapter(modeldir.load_dit(base), tmp_path, base)
    dit = modeldir.load_dit(base)
    lora.load(dit, tmp_path, lora.base_sha256(base), scale=1.0, name="style")
    full = velocity(dit)
    assert not torch.allclose(full, want, atol=1e-4)
    lora.activate(dit, {"style": 0.0})
    torch.testing.assert_close(velocity(dit), want, rtol=0, atol=1e-6)
    lora.activate(dit, {"style": 0.5})
    half = velocity(dit)
    assert 0.2 < float((half - want).norm() / (full - want).norm()) < 0.8
    lora.activate(dit, {})  # the base model
    torch.testing.assert_close(velocity(dit), want, rtol=0, atol=1e-6)
    lora.activate(dit, {"style": 1.0})
    lora.fuse(dit)
    torch.testing.assert_close(velocity(dit), full, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="unfuse them"):
        lora.activate(dit, {})
    lora.unfuse(dit)
    torch.testing.assert_close(velocity(dit), full, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="no LoRA adapter named"):
        lora.activate(dit, {"other": 1.0})


def test_adapter_is_refused_on_another_base(base, tmp_path):
    trained_adapter(modeldir.load_dit(base), tmp_path / "a", base)
    (tmp_path / "other").mkdir()
    other = make_tiny_model(tmp_path / "other", window=17)
    with torch.no_grad():  # another transformer: its weights differ
        dit = modeldir.load_dit(other)
        for p in dit.parameters():
            p.add_(0.01)
        modeldir.save_weights(other / "dit.safetensors", dit)
    with pytest.raises(ValueError, match="trained for another base"):
        load(other, lora=str(tmp_path / "a"))
    (tmp_path / "a" / "lora_config.json").unlink()
    with pytest.raises(ValueError, match="base model is unknown"):
        load(base, lora=str(tmp_path / "a"))
    with pytest.raises(ValueError, match="no LoRA file"):
        load(base, lora=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="target modules"):
        lora.LoraSettings(targets=("ada",)).validate()


def test_spec_and_names():
    assert lora.parse_spec("runs/style:0.8") == ("runs/style", 0.8)
    assert lora.parse_spec("runs/style") == ("runs/style", 1.0)
    assert lora.parse_spec("C:/x/style") == ("C:/x/style", 1.0)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    rows = []
    for i, prompt in enumerate(["a red circle moves right", "a blue square falls"]):
        frames = render(scene_from_prompt(prompt, np.random.default_rng(i), 1.0, 2.0), 64, 64, 8, 2.0)
        video.write(folder / f"c{i}.mp4", frames, 8)
        rows.append(json.dumps({"file": f"c{i}.mp4", "caption": prompt}))
    (folder / "captions.jsonl").write_text("\n".join(rows) + "\n")
    return folder


def test_train_lora_resumes_exactly_and_generates_with_it(base, clips, tmp_path, capsys):
    common = ["train", "lora", "--model", str(base), "--data", str(clips), "--rank", "2"]
    common += ["--steps", "4", "--batch", "2", "--ckpt-every", "2"]
    assert cli.main([*common, "--out", str(tmp_path / "whole")]) == 0
    # an interrupted run (stopped after its first checkpoint) resumed by the same command
    from nanosora.training import train as train_mod

    real = train_mod.run
    calls = []

    def stop_early(*a, **k):
        calls.append(1)
        return real(*a, **{**k, "stop_after": 2}) if len(calls) == 1 else real(*a, **k)

    train_mod.run = stop_early
    try:
        assert cli.main([*common, "--out", str(tmp_path / "split")]) == 0
        assert not (tmp_path / "split" / "checkpoints" / "ckpt-00000004.pt").exists()
        assert cli.main([*common, "--out", str(tmp_path / "split")]) == 0
    finally:
        train_mod.run = real
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "whole" / lora.FILE))
    b = load_file(str(tmp_path / "split" / lora.FILE))
    assert a.keys() == b.keys() and any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)
    for k in a:  # the same weights, to float rounding (its batches are encoded as it trains)
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    assert json.loads((tmp_path / "whole" / lora.SETTINGS).read_text())["steps"] == 4

    out = tmp_path / "x.mp4"
    args = [
        "generate",
        "a red circle",
        "--model",
        str(base),
        "--steps",
        "1",
        "--width",
        "32",
        "--height",
        "32",
    ]
    assert cli.main([*args, "--lora", f"{tmp_path / 'whole'}:0.5", "-o", str(out)]) == 0
    assert video.read(out).metadata["lora"] == {"whole": 0.5}


def test_a_request_sets_its_adapters_for_its_video_only(base, tmp_path):
    trained_adapter(modeldir.load_dit(base), tmp_path / "style", base)
    model = load(base, lora=str(tmp_path / "style"))
    assert model.lora_scales() == {"style": 1.0}
    fast = dict(steps=1, width=32, height=32, seconds=0, watermark=False, seed=1)
    styled = model.generate("a red circle", **fast)
    plain = model.generate("a red circle", lora={}, **fast)
    assert "lora" not in plain.metadata and styled.metadata["lora"] == {"style": 1.0}
    assert not np.array_equal(styled.frames, plain.frames)
    assert model.lora_scales() == {"style": 1.0}  # restored after the request
    np.testing.assert_array_equal(model.generate("a red circle", **fast).frames, styled.frames)
    with pytest.raises(ValueError, match="no LoRA adapter named"):
        model.generate("a red circle", lora={"other": 1.0}, **fast)
    with pytest.raises(ValueError, match="scale of LoRA adapter"):
        model.generate("a red circle", lora={"style": 9.0}, **fast)
    with pytest.raises(ValueError, match="no LoRA adapters are loaded"):
        load(base).generate("a red circle", lora={"style": 1.0}, **fast)


def test_finetune_starts_from_the_base_and_makes_a_model_directory(base, clips, tmp_path):
    out = tmp_path / "mine"
    args = ["train", "finetune", "--model", str(base), "--data", str(clips), "--out", str(out)]
    assert cli.main([*args, "--steps", "2", "--batch", "2", "--lr", "1e-3"]) == 0
    tuned = load(out)
    assert tuned.config.trained_on == clips.name and "circle" in tuned.config.vocabulary
    before, after = modeldir.load_dit(base).state_dict(), tuned.dit.state_dict()
    # it started from the base: two small steps move the weights a little, not from scratch
    moved = [float((after[k] - before[k]).abs().max()) for k in before]
    assert 0 < max(moved) < 0.05


def test_serve_lora_flags_are_checked_before_anything_loads(capsys):
    assert cli.main(["serve", "--lora", "no-equals-sign"]) == 2
    assert "NAME=FILE" in capsys.readouterr().err
    assert cli.main(["serve", "--lora", "a:b=x"]) == 2
    assert cli.main(["serve", "--lora", "style=x", "--workers", "2"]) == 2
    assert "one worker" in capsys.readouterr().err
