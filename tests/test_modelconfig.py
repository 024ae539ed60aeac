"""A model directory's config.json is one typed value, written by one builder and read
strictly: a missing section or an unknown key is named, and what it says is what runs."""

import dataclasses
import json

import pytest

from nanosora import modelconfig, modeldir
from nanosora.config import VAE_PRESETS
from nanosora.model import default_model_path, load
from nanosora.networks.dit import DIT_PRESETS
from tests.helpers import make_tiny_model


def test_round_trip_through_json():
    cfg = modelconfig.build(
        VAE_PRESETS["tiny"],
        dataclasses.replace(DIT_PRESETS["tiny"], patch=(1, 1, 1), route=(0, 1)),
        text=modelconfig.TextConfig(sentence_tokens=True),
        runs={"dit_train": {"step": 3}},
        name="mine",
        window=9,
        recipe={"dit_steps": 3},
    )
    back = modelconfig.from_json(json.loads(json.dumps(cfg.to_json())))
    assert back == cfg and back.dit.route == (0, 1) and back.text.sentence_tokens


def test_the_shipped_config_reads_strictly():
    cfg = modeldir.read_config(default_model_path())
    assert cfg.dit is not None and cfg.vae.latent_channels == cfg.dit.latent_channels
    assert cfg.name == "default" and cfg.expands_flatland and cfg.window == 17


def test_guidance_distillation_is_the_models_own_key():
    """A distilled transformer is the model's `guidance_distilled`, written only when true;
    the transformer's section has no such key (the shipped config no longer carries the old
    "guidance_embed", and a config that does is refused by name)."""
    d = modeldir.read_config(default_model_path()).to_json()
    assert "guidance_embed" not in d["dit"] and "guidance_distilled" not in d
    cfg = modelconfig.from_json(d | {"guidance_distilled": True})
    assert cfg.guidance_distilled and cfg.to_json()["guidance_distilled"] is True
    assert modelconfig.from_json(cfg.to_json()) == cfg
    d["dit"]["guidance_embed"] = False
    with pytest.raises(ValueError, match="guidance_embed"):
        modelconfig.from_json(d)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: d.pop("vae"), "no 'vae' section"),
        (lambda d: d.update(colour="red"), "unknown keys \\['colour'\\]"),
        (lambda d: d["text"].update(encodr="x"), "bad 'text' section"),
        (lambda d: d["dit"].update(depht=3), "bad 'dit' section"),
        (lambda d: d.update(fps=0), "fps 0"),
        (lambda d: d.update(format=2), "not a nanosora model config"),
        (lambda d: d.update(guidance_distilled="yes"), "'guidance_distilled' must be true or false"),
        (lambda d: d.update(vocabulary="red circle"), "'vocabulary' must be a list of words"),
        (lambda d: d.update(window=True), "'window' must be a whole number"),
        (lambda d: d.update(planner={"hiden": 3}), "bad 'planner' section"),
    ],
)
def test_bad_configs_are_refused_by_name(tmp_path, change, message):
    folder = make_tiny_model(tmp_path)
    d = json.loads((folder / "config.json").read_text())
    change(d)
    (folder / "config.json").write_text(json.dumps(d))
    with pytest.raises(modeldir.ModelError, match=message):
        load(folder)


def test_a_model_not_trained_on_flatland_takes_prompts_as_written(tmp_path):
    folder = make_tiny_model(tmp_path)
    cfg = dataclasses.replace(modeldir.read_config(folder), trained_on="my_clips")
    modeldir.write_config(folder, cfg)
    model = load(folder)
    video = model.generate("a red circle moves right", frames=1, steps=1)
    assert video.metadata["caption"] == "a red circle moves right"  # no Flatland caption
    (tmp_path / "flat").mkdir()
    flat = load(make_tiny_model(tmp_path / "flat"))
    assert flat.generate("a red circle moves right", frames=1, steps=1).metadata["caption"].startswith("On a")
