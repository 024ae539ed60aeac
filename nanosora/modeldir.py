"""A model directory, the unit users share: config.json plus one safetensors file per network.

    config.json        one modelconfig.ModelConfig: {"format": 1, "vae": {...}, "dit": {...}, ...}
    vae.safetensors    the autoencoder's weights
    dit.safetensors    the diffusion transformer's weights (EMA)
    planner.safetensors  the layout planner's, for a transformer that reads layouts
    MODEL_CARD.md      data, recipe, cost and scores

Weights load only from safetensors and JSON. Networks are built on the meta device and
filled with `load_state_dict(assign=True)`, so nothing is allocated twice; a missing or
unexpected key is an error that names the file, never half a model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from nanosora import modelconfig
from nanosora.atomic import atomic_path
from nanosora.modelconfig import ModelConfig


class ModelError(ValueError):
    """A model directory is missing, incomplete or corrupted; the message names the file."""


def read_config(folder: str | Path) -> ModelConfig:
    """The model directory's config.json, strictly (modelconfig.from_json)."""
    path = Path(folder) / "config.json"
    if not Path(folder).is_dir():
        raise ModelError(f"{folder}: model directory not found")
    if not path.is_file():
        raise ModelError(f"{path}: missing (a model directory holds config.json and *.safetensors)")
    try:
        return modelconfig.from_json(json.loads(path.read_text()), where=str(path))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelError(str(e) if str(path) in str(e) else f"{path}: not valid JSON ({e})") from None


def write_config(folder: str | Path, cfg: ModelConfig) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "config.json") as tmp:
        tmp.write_text(json.dumps(cfg.to_json(), indent=2) + "\n")


def save_weights(path: str | Path, module: torch.nn.Module, dtype: torch.dtype | None = None) -> None:
    sd = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
        for k, v in module.state_dict().items()
    }
    sd = {k: v.detach().contiguous().cpu() for k, v in sd.items()}
    with atomic_path(path) as tmp:
        save_file(sd, str(tmp))


def load_weights(path: str | Path, module: torch.nn.Module) -> torch.nn.Module:
    """Fill a module (built on the meta device or not) from a safetensors file, strictly."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: weight file not found")
    try:
        sd = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{path}: not a readable safetensors file ({e})") from None
    expected = module.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    if missing or unexpected:
        raise ModelError(
            f"{path}: weights do not match the config: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}"
        )
    for k, v in sd.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise ModelError(
                f"{path}: {k} has shape {tuple(v.shape)}; the config expects {tuple(expected[k].shape)}"
            )
    sd = {k: v.to(expected[k].dtype) for k, v in sd.items()}
    module.load_state_dict(sd, assign=True)
    return module


def load_vae(folder: str | Path):
    from nanosora.networks.vae import VideoVAE

    vcfg = read_config(folder).vae
    with torch.device("meta"):
        vae = VideoVAE(vcfg)
    load_weights(Path(folder) / "vae.safetensors", vae)
    return latent_stats(vae, vcfg).eval()


def latent_stats(vae, vcfg):
    """Set the latent statistics (shift, scale), buffers that are not in the weight file,
    from the config, in float32."""
    n = vcfg.latent_channels
    vae.shift = torch.tensor(vcfg.shift or [0.0] * n).float().view(1, n, 1, 1, 1)
    vae.scale = torch.tensor(vcfg.scale or [1.0] * n).float().view(1, n, 1, 1, 1)
    return vae


def new_dit(cfg: ModelConfig):
    """The transformer a model config describes, freshly initialised: a DiT (a
    routed.RoutedDiT if it routes tokens), or a guided.GuidedDiT for a guidance-distilled model."""
    from nanosora.networks import routed
    from nanosora.networks.guided import GuidedDiT

    return GuidedDiT(cfg.dit) if cfg.guidance_distilled else routed.new(cfg.dit)


def load_dit(folder: str | Path):
    cfg = read_config(folder)
    if cfg.dit is None:
        raise ModelError(f"{Path(folder) / 'config.json'}: has no 'dit' section")
    with torch.device("meta"):
        dit = new_dit(cfg)
    return load_weights(Path(folder) / "dit.safetensors", dit).eval()


def load_planner(folder: str | Path):
    """The model directory's layout planner (planner.safetensors; config.json's 'planner')."""
    from nanosora.networks.planner import Planner

    cfg = read_config(folder)
    if cfg.planner is None:
        raise ModelError(f"{Path(folder) / 'config.json'}: has no 'planner' section")
    with torch.device("meta"):
        planner = Planner(cfg.planner)
    return load_weights(Path(folder) / "planner.safetensors", planner).eval()


def export(
    src: str | Path,
    dst: str | Path,
    half: bool = True,
    checkpoint: str | Path | None = None,
    name: str | None = None,
) -> Path:
    """A trained run folder -> a clean model directory: config.json (renamed to `name`) and
    the weights, in float16 when `half` (half the size; loading casts back to float32).
    `checkpoint`: take the transformer's EMA weights from this training checkpoint instead
    of the run's newest. Checks that the result loads before it returns."""
    import dataclasses
    import shutil
    import tempfile

    src, dst = Path(src), Path(dst)
    vae, dit = load_vae(src), load_dit(src)  # refuses a broken source by name
    cfg = read_config(src)
    if name is not None:
        cfg = dataclasses.replace(cfg, name=name)
    if checkpoint is not None:
        from nanosora.training import checkpoint as ckpt

        state = ckpt.load(checkpoint)  # checks its checksum
        ema = {k.removeprefix("shadow."): v for k, v in state["ema"].items()}
        dit.load_state_dict(ema, strict=True)
        cfg = dataclasses.replace(cfg, trained_steps=int(state["step"]))
    if dst.exists() and any(dst.iterdir()):
        raise ModelError(f"{dst}: exists and is not empty; choose a new folder")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        tmp = Path(tmp)
        write_config(tmp, cfg)
        dtype = torch.float16 if half else None
        save_weights(tmp / "vae.safetensors", vae, dtype)
        save_weights(tmp / "dit.safetensors", dit, dtype)
        load_vae(tmp), load_dit(tmp)
        if cfg.planner is not None:  # its boxes move by under 1e-6 of the frame in float16
            save_weights(tmp / "planner.safetensors", load_planner(src), dtype)
            load_planner(tmp)
        dst.mkdir(exist_ok=True)
        for f in tmp.iterdir():
            shutil.move(str(f), dst / f.name)
    return dst
