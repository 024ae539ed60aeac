"""Dataclass configs for every component and their named presets.

A preset is a plain instance; `dataclasses.replace(preset, field=value)` makes a variant.
Configs travel inside a model directory's config.json (`to_dict` / `from_dict`), so a
model is rebuilt from its own file, never from whatever the presets say today.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

DEFAULT_STEPS = 20
# Text guidance. World benchmark, 32 prompts in each of 4 suites (127 clips): the previous
# default model passed 25 clips at 8 against 17 at 4 (10 scored like 8); the shipped one 42
# at 8, 44 at 6, 39 at 4.
DEFAULT_GUIDANCE = 8.0
# Guidance stops once the sampling time t (1 noise, 0 data) falls to this; the remaining steps
# run the text pass alone (flow.guided). Default model, 20 steps, 48 prompts in each of 5
# suites (single, two objects, held-out, paraphrases, wide/tall; 240 clips): 0 (guide every
# step) 120 clips, 0.3 131, 0.45 140, 0.55 139, 0.65 134; at 0.45, guidance 6 / 8 / 10 passed
# 140 / 140 / 137.
DEFAULT_GUIDANCE_UNTIL = 0.45


@dataclass(frozen=True)
class VAEConfig:
    """The causal video autoencoder (vae.py).

    Space is compressed by `patch * 2 ** (len(widths) - 1)`, time by `2 ** time_downs`.
    `shift` and `scale` (one per latent channel) normalise latents to zero mean and unit
    variance for the diffusion transformer; they are measured after training.
    """

    latent_channels: int = 16
    patch: int = 1  # pixel (un)shuffle at the input and output (2: no layer at full size)
    widths: tuple[int, ...] = (32, 64, 128, 128)  # channels per spatial level, finest first
    time_downs: int = 2  # 2x time reductions, all at the coarsest level where they are cheap
    time_space: int = 1  # spatial size of the time layers' kernels (3: full 3D kernels)
    enc_blocks: int = 1  # extra 3x3 layers at the coarsest level, encoder
    dec_blocks: int = 1  # and decoder
    shift: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None

    @property
    def space_factor(self) -> int:
        return self.patch * 2 ** (len(self.widths) - 1)

    @property
    def time_factor(self) -> int:
        return 2**self.time_downs

    def validate(self) -> None:
        if self.latent_channels < 1 or self.patch < 1 or not self.widths or self.time_downs < 0:
            raise ValueError(f"invalid VAE config: {self}")
        for name in ("shift", "scale"):
            v = getattr(self, name)
            if v is not None and len(v) != self.latent_channels:
                raise ValueError(f"VAE config {name} has {len(v)} values; expected {self.latent_channels}")


VAE_PRESETS: dict[str, VAEConfig] = {
    "tiny": VAEConfig(latent_channels=4, widths=(8, 8, 16, 16), enc_blocks=0, dec_blocks=0),
    "default": VAEConfig(),
}


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls, d: dict):
    """Build a config from a dict, refusing unknown keys (a typo must not pass silently)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {sorted(unknown)}; known: {sorted(names)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    cfg = cls(**kwargs)
    if hasattr(cfg, "validate"):
        cfg.validate()
    return cfg


def preset(presets: dict, name: str):
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(presets)}")
    return presets[name]
