"""`nanosora train --preset P`: the whole recipe runs end to end and resumes stage by stage."""

import json

from nanosora import device, modeldir
from nanosora.model import load
from nanosora.training import recipe
from nanosora.world.heldout import exclusions


def test_tiny_recipe_makes_a_model_and_a_rerun_changes_nothing(tmp_path, monkeypatch):
    sources = []
    real_build = recipe.cache.build

    def spy(out, vae, source, **kw):
        sources.append(source)
        return real_build(out, vae, source, **kw)

    monkeypatch.setattr(recipe.cache, "build", spy)
    model_dir = recipe.run("tiny", tmp_path, progress=False, log=lambda *_: None)
    assert model_dir == tmp_path / "ground"  # the last stage's: the layout model grounded
    # the cache, and so the transformer, never sees the benchmark's held-out combinations
    assert exclusions() and sources[0].exclude == exclusions()
    cfg = json.loads((model_dir / "config.json").read_text())
    r = recipe.RECIPES["tiny"]
    # the grounding stage continued the binding stage's transformer with its losses on
    assert cfg["training"]["dit_train_before"]["step"] == r.binding_steps
    assert cfg["training"]["dit_train"]["step"] == r.ground_steps
    objective = cfg["training"]["dit_train"]["objective"]
    assert (objective["ground_cross"], objective["ground_self"]) == (r.ground_cross, r.ground_self) != (0, 0)
    assert cfg["recipe"]["dit_steps"] == r.dit_steps
    assert cfg["dit"]["layout"] and cfg["planner"] and (model_dir / "planner.safetensors").is_file()
    # the finished model samples with regional cross-attention; the stages before it do not
    assert cfg["dit"]["regions"] is r.regions is True
    assert cfg["dit"]["regions_self"] is r.regions_self is True
    assert not json.loads((tmp_path / "binding" / "config.json").read_text())["dit"].get("regions", False)
    # the autoencoder stage runs in bf16 only if the recipe asks and the CPU has it natively
    vae_cfg = modeldir.read_config(tmp_path / "vae")
    assert vae_cfg.training["vae_train"]["cpu_bf16"] == (r.vae_cpu_bf16 and device.cpu_has_bf16())
    # the model directory is complete: it loads and generates
    video = load(model_dir).generate("a red circle", frames=1, steps=2, seed=0)
    assert len(video.frames) == 1

    # every stage is finished, so rerunning the command trains nothing more
    names = ("dit.safetensors", "vae.safetensors", "planner.safetensors")
    weights = {n: (model_dir / n).read_bytes() for n in names}
    log_lines = (model_dir / "log.jsonl").read_text().count("\n")
    recipe.run("tiny", tmp_path, progress=False, log=lambda *_: None)
    assert {n: (model_dir / n).read_bytes() for n in names} == weights
    assert (model_dir / "log.jsonl").read_text().count("\n") == log_lines


def test_a_time_budget_is_measured_once_and_kept(tmp_path):
    from nanosora.networks.dit import DIT_PRESETS
    from nanosora.training.train_dit import DiTTrainConfig
    from tests.helpers import FakeCache

    cfg, src, d = DIT_PRESETS["tiny"], FakeCache(), DiTTrainConfig()
    assert recipe.dit_steps(None, 20, tmp_path, cfg, src, 2, d, False) == 20  # no budget
    assert recipe.dit_steps(1e-6, 50, tmp_path, cfg, src, 2, d, False) == 1  # what fits
    record = json.loads((tmp_path / "steps.json").read_text())
    assert record["steps"] == 1 and record["step_seconds"] > 0
    (tmp_path / "steps.json").write_text(json.dumps({**record, "steps": 7}))
    # a rerun takes the recorded count, whatever this machine's speed now
    assert recipe.dit_steps(1e-6, 50, tmp_path, cfg, src, 2, d, False) == 7
    (tmp_path / "other").mkdir()
    assert recipe.dit_steps(1e6, 50, tmp_path / "other", cfg, src, 2, d, False) == 50  # the cap


def test_stage_times_add_up_over_invocations(tmp_path):
    recipe._spent(tmp_path, "vae_s", 60.0)
    recipe._spent(tmp_path, "vae_s", 30.0)  # resumed: the stage's time so far
    recipe._spent(tmp_path, "cache_s", 10.0)
    assert recipe._spent(tmp_path) == {"vae_s": 90.0, "cache_s": 10.0}
