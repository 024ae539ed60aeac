"""`nanosora export --format diffusers`: a folder diffusers loads offline, giving nanosora's frames."""

import json
import os

import numpy as np
import pytest
import torch

import nanosora
from nanosora import cli
from nanosora.diffusers_pipeline import export

PROMPT = "a big red circle stays still"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "nanosora-diffusers"
    assert cli.main(["export", "--format", "diffusers", str(out)]) == 0  # the shipped model
    return out


@pytest.fixture(scope="module")
def pipe(folder):
    from diffusers import DiffusionPipeline

    os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may be fetched: the folder is all there is
    p = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True, local_files_only=True)
    p.set_progress_bar_config(disable=True)
    return p


def test_the_folder_has_diffusers_layout(folder):
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_nanosora", "NanoSoraPipeline"]
    for name in ("transformer", "vae"):
        assert index[name][0] == f"nanosora_{name}"
        assert (folder / name / "diffusion_pytorch_model.safetensors").is_file()
        assert json.loads((folder / name / "config.json").read_text())["_class_name"] == index[name][1]
    assert index["nanosora"]["name"] == "default"
    assert "dit" not in index["nanosora"]  # the components' configs are the components'


def test_the_same_frames_as_nanosora_generate(pipe):
    out = pipe(PROMPT, num_frames=9, num_inference_steps=4, generator=torch.Generator().manual_seed(3))
    assert out.frames.shape == (1, 9, 64, 64, 3) and out.frames.dtype == np.float32
    want = nanosora.load().generate(PROMPT, frames=9, steps=4, seed=3).frames
    assert np.array_equal(np.round(out.frames[0] * 255).astype(np.uint8), want)
    assert out.metadata[0]["seed"] == 3 and "circle" in out.metadata[0]["caption"]


def test_diffusers_own_export_to_video_saves_the_frames(pipe, tmp_path):
    """The documented save: the `diffusers` extra brings the ffmpeg export_to_video needs."""
    from diffusers.utils import export_to_video

    from nanosora import video

    out = pipe(PROMPT, num_frames=9, num_inference_steps=4, generator=torch.Generator().manual_seed(3))
    path = export_to_video(list(out.frames[0]), str(tmp_path / "clip.mp4"), fps=8)
    back = video.read(path)
    assert back.frames.shape == (9, 64, 64, 3) and back.fps == pytest.approx(8)
    # lossy, but the same clip: as much red on black as the pipeline drew
    assert np.abs(back.frames / 255.0 - out.frames[0]).mean() < 0.03
    red = (back.frames[..., 0].astype(int) - back.frames[..., 1] > 100).mean()
    drawn = (out.frames[0][..., 0] - out.frames[0][..., 1] > 100 / 255).mean()
    assert red > 0.03 and abs(red - drawn) < 0.02


def test_videos_per_prompt_take_the_next_seeds_and_pt_output(pipe):
    steps = []
    out = pipe(
        [PROMPT],
        num_frames=5,
        num_inference_steps=2,
        num_videos_per_prompt=2,
        generator=torch.Generator().manual_seed(7),
        output_type="pt",
        callback_on_step_end=lambda p, i, t, kw: steps.append((i, float(t), tuple(kw["latents"].shape))),
    )
    assert out.frames.shape == (2, 5, 3, 64, 64)
    assert [m["seed"] for m in out.metadata] == [7, 8]
    assert not torch.equal(out.frames[0], out.frames[1])
    assert [s[0] for s in steps] == [0, 1, 0, 1]  # each video's steps
    assert steps[1][1] == 0.0 and steps[0][1] == 0.5
    assert len(steps[0][2]) == 5  # (B, C, T, h, w)


def test_bad_calls_are_refused_by_name(pipe):
    with pytest.raises(ValueError, match="output_type"):
        pipe(PROMPT, output_type="gif")
    with pytest.raises(ValueError, match="steps"):
        pipe(PROMPT, num_inference_steps=0)
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        pipe(PROMPT, callback_on_step_end_tensor_inputs=["prompt_embeds"])


def test_export_refuses_a_folder_in_use_and_writes_nothing(tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an empty folder"):
        export(nanosora.model.default_model_path(), busy)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    assert cli.main(["export", str(tmp_path / "only-out")]) == 2  # a model directory needs RUN OUT
    assert "RUN OUT" in capsys.readouterr().err
    assert cli.main(["export", "--format", "diffusers", "a", "b", "c"]) == 2
    assert not (tmp_path / "only-out").exists()
