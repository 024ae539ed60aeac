"""Generation: every mode as plain functions over the autoencoder, the transformer and the
text encoder; the Python API (`nanosora.load`), the CLI and the server all call these.

    prompt --expand--> detailed caption --text encoder--> token embeddings
    seeded noise on the latent grid (+ conditioning latents and a frame mask)
    --> flow-matching sampler with guidance --> latents --> chunked decoder --> frames
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nanosora import __version__, flow, modeldir
from nanosora.vae import tensor_to_frames
from nanosora.video import Video

DEFAULT_STEPS = 20
DEFAULT_GUIDANCE = 4.0


def default_model_path() -> Path:
    return Path(__file__).resolve().parent.parent / "models" / "default"


def expand_prompt(
    prompt: str, seconds: float, aspect: float, seed: int, hook: Callable[[str], str] | None = None
):
    """A short prompt -> a detailed caption like the training captions. Flatland prompts are
    expanded by the world's parser (a concrete plan of sizes, places and motions); anything
    else goes to `hook` (an external language model) or is used as it is."""
    from nanosora.world.caption import detailed_caption
    from nanosora.world.parse import PromptError, scene_from_prompt

    try:
        scene = scene_from_prompt(prompt, np.random.default_rng(seed), aspect=aspect, seconds=seconds)
    except (PromptError, ValueError):
        return hook(prompt) if hook is not None else prompt
    return detailed_caption(scene, seconds)


def sample_latents(
    dit,
    text: torch.Tensor,
    text_mask: torch.Tensor,
    null_text: torch.Tensor,
    null_mask: torch.Tensor,
    shape: tuple[int, int, int, int],
    seeds: list[int],
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    cond: torch.Tensor | None = None,
    frame_mask: torch.Tensor | None = None,
    cond_guidance: float = 1.0,
    method: str = "euler",
    shift: float | None = None,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Latents (B, C, T, h, w) for B = len(seeds) samples. text: (B, L, D) with mask;
    null_text: the empty (or negative) prompt, (B, L0, D). cond/frame_mask: given frames."""
    b = len(seeds)
    tokens = int(np.prod(dit.grid(shape)))
    shift = flow.shift_for(tokens) if shift is None else shift
    x = flow.get_noise(shape, seeds)
    has_cond = frame_mask is not None and bool(frame_mask.any())
    zeros = torch.zeros(b, shape[1])

    def model_fn(x, t, mode):
        tt = torch.full((b,), float(t))
        txt, msk = (text, text_mask) if mode == "full" else (null_text, null_mask)
        fm = frame_mask if (has_cond and mode != "none") else zeros
        with torch.inference_mode():
            return dit(x, tt, txt, msk, cond=cond, frame_mask=fm)

    velocity = flow.guided(model_fn, guidance, cond_guidance, has_cond)
    x = flow.denoise(velocity, x, flow.get_schedule(steps, shift), method, callback)
    if has_cond:  # given frames are given: keep them exactly
        m = frame_mask[:, None, :, None, None].to(x.dtype)
        x = x * (1 - m) + cond * m
    return x


@dataclass
class Model:
    """A loaded model directory: autoencoder, transformer, text encoder and settings."""

    vae: torch.nn.Module
    dit: torch.nn.Module
    text_encoder: object
    config: dict
    path: Path

    @property
    def fps(self) -> int:
        return int(self.config.get("fps", 8))

    def encode_text(self, texts: list[str]):
        from nanosora.text import pad

        return pad(self.text_encoder.encode_tokens(texts))

    def generate(
        self,
        prompt: str,
        *,
        width: int = 64,
        height: int = 64,
        seconds: float | None = None,
        frames: int | None = None,
        fps: int | None = None,
        steps: int = DEFAULT_STEPS,
        guidance: float = DEFAULT_GUIDANCE,
        seed: int = 0,
        negative_prompt: str = "",
        expand: bool = True,
        sampler: str = "euler",
        callback: Callable[[int, int, torch.Tensor], None] | None = None,
    ) -> Video:
        """Text to video (frames = 1 + 4k; 1 frame is text to image)."""
        from nanosora.vae import check_frames, check_size

        fps = fps or self.fps
        if frames is None:
            frames = int(round((seconds if seconds is not None else 2.0) * fps)) + 1
            frames = 1 + 4 * max(0, round((frames - 1) / 4))
        check_frames(frames, self.vae.cfg.time_factor)
        check_size(height, width, 16)
        if steps < 1:
            raise ValueError(f"steps {steps} is not valid: use 1 or more")
        if guidance < 0:
            raise ValueError(f"guidance {guidance} is not valid: use 0 or more")
        t0 = time.perf_counter()
        secs = (frames - 1) / fps
        caption = expand_prompt(prompt, secs or 1.0 / fps, width / height, seed) if expand else prompt
        text, mask = self.encode_text([caption])
        null, null_mask = self.encode_text([negative_prompt])
        shape = (self.vae.cfg.latent_channels, *self.vae.latent_shape(frames, height, width)[1:])
        z = sample_latents(
            self.dit,
            text,
            mask,
            null,
            null_mask,
            shape,
            [seed],
            steps,
            guidance,
            method=sampler,
            callback=callback,
        )
        with torch.inference_mode():
            x = self.vae.decode(z)
        meta = {
            "generator": f"nanosora {__version__}",
            "model": str(self.config.get("name", self.path.name)),
            "prompt": prompt,
            "caption": caption,
            "negative_prompt": negative_prompt,
            "seed": seed,
            "width": width,
            "height": height,
            "frames": frames,
            "fps": fps,
            "steps": steps,
            "guidance": guidance,
            "sampler": sampler,
            "seconds_to_generate": round(time.perf_counter() - t0, 3),
        }
        return Video(tensor_to_frames(x[0]), fps, meta)


def load(path: str | Path | None = None) -> Model:
    """Load a model directory (None: the shipped default model)."""
    from nanosora.text import TextEncoder

    path = Path(path) if path is not None else default_model_path()
    cfg = modeldir.read_config(path)
    vae = modeldir.load_vae(path)
    dit = modeldir.load_dit(path)
    text_cfg = cfg.get("text", {})
    enc = TextEncoder(text_cfg.get("encoder", "minilm"), max_tokens=int(text_cfg.get("max_tokens", 128)))
    return Model(vae, dit, enc, cfg, path)
