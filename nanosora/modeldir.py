"""A model directory, the unit users share: config.json plus one safetensors file per network.

    config.json        {"format": 1, "vae": {...}, "dit": {...}, "text": {...}, "fps": 8, ...}
    vae.safetensors    the autoencoder's weights
    dit.safetensors    the diffusion transformer's weights (EMA)
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

from nanosora.video import atomic_path

FORMAT = 1


class ModelError(ValueError):
    """A model directory is missing, incomplete or corrupted; the message names the file."""


def read_config(folder: str | Path) -> dict:
    path = Path(folder) / "config.json"
    if not Path(folder).is_dir():
        raise ModelError(f"{folder}: model directory not found")
    if not path.is_file():
        raise ModelError(f"{path}: missing (a model directory holds config.json and *.safetensors)")
    try:
        cfg = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise ModelError(f'{path}: not a nanosora model config (expected "format": {FORMAT})')
    return cfg


def write_config(folder: str | Path, cfg: dict) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "config.json") as tmp:
        tmp.write_text(json.dumps({"format": FORMAT, **cfg}, indent=2) + "\n")


def update_config(folder: str | Path, **parts) -> dict:
    """Merge top-level parts into config.json (creating it), keeping what is there."""
    folder = Path(folder)
    cfg = read_config(folder) if (folder / "config.json").exists() else {}
    cfg.pop("format", None)
    cfg.update(parts)
    write_config(folder, cfg)
    return cfg


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
    from nanosora.config import VAEConfig, from_dict
    from nanosora.vae import VideoVAE

    cfg = read_config(folder)
    if "vae" not in cfg:
        raise ModelError(f"{Path(folder) / 'config.json'}: has no 'vae' section")
    try:
        vcfg = from_dict(VAEConfig, cfg["vae"])
    except (TypeError, ValueError) as e:
        raise ModelError(f"{Path(folder) / 'config.json'}: bad 'vae' section ({e})") from None
    with torch.device("meta"):
        vae = VideoVAE(vcfg)
    load_weights(Path(folder) / "vae.safetensors", vae)
    # buffers that are not in the file (shift, scale) come from the config
    n = vcfg.latent_channels
    vae.shift = torch.tensor(vcfg.shift or [0.0] * n).float().view(1, n, 1, 1, 1)
    vae.scale = torch.tensor(vcfg.scale or [1.0] * n).float().view(1, n, 1, 1, 1)
    return vae.eval()


def load_dit(folder: str | Path):
    from nanosora.config import from_dict
    from nanosora.dit import DiT, DiTConfig

    cfg = read_config(folder)
    if "dit" not in cfg:
        raise ModelError(f"{Path(folder) / 'config.json'}: has no 'dit' section")
    try:
        d = dict(cfg["dit"])
        d["patch"] = tuple(d.get("patch", (1, 2, 2)))
        dcfg = from_dict(DiTConfig, d)
    except (TypeError, ValueError) as e:
        raise ModelError(f"{Path(folder) / 'config.json'}: bad 'dit' section ({e})") from None
    with torch.device("meta"):
        dit = DiT(dcfg)
    return load_weights(Path(folder) / "dit.safetensors", dit).eval()


def export(
    src: str | Path, dst: str | Path, half: bool = True, checkpoint: str | Path | None = None, **config
) -> Path:
    """A trained run folder -> a clean model directory: config.json (plus `config` entries)
    and the weights, in float16 when `half` (half the size; loading casts back to float32).
    `checkpoint`: take the transformer's EMA weights from this training checkpoint instead
    of the run's newest. Checks that the result loads before it returns."""
    import shutil
    import tempfile

    src, dst = Path(src), Path(dst)
    vae, dit = load_vae(src), load_dit(src)  # refuses a broken source by name
    if checkpoint is not None:
        from nanosora import checkpoint as ckpt

        state = ckpt.load(checkpoint)  # checks its checksum
        ema = {k.removeprefix("shadow."): v for k, v in state["ema"].items()}
        dit.load_state_dict(ema, strict=True)
        config = {"trained_steps": int(state["step"]), **config}
    if dst.exists() and any(dst.iterdir()):
        raise ModelError(f"{dst}: exists and is not empty; choose a new folder")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        tmp = Path(tmp)
        cfg = read_config(src)
        runs = ("dit_train", "vae_train", "distill_train")
        cfg = {k: v for k, v in cfg.items() if k not in runs} | config
        cfg["training"] = {k: read_config(src)[k] for k in runs if k in read_config(src)}
        write_config(tmp, cfg)
        dtype = torch.float16 if half else None
        save_weights(tmp / "vae.safetensors", vae, dtype)
        save_weights(tmp / "dit.safetensors", dit, dtype)
        load_vae(tmp), load_dit(tmp)
        dst.mkdir(exist_ok=True)
        for f in tmp.iterdir():
            shutil.move(str(f), dst / f.name)
    return dst
