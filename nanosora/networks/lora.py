"""LoRA adapters on the transformer, made and loaded with PEFT (Hu et al. 2021).

An adapter file is what diffusers and PEFT write: `pytorch_lora_weights.safetensors` with
keys `transformer.<module>.lora_A.weight` / `lora_B.weight`, and beside it
`lora_config.json` with its rank, alpha, target modules and the base model it was trained
on (the SHA-256 of that model's dit.safetensors): an adapter is refused on any other base,
whose weights it would silently corrupt. Several adapters can be loaded at once, each with
its own scale; `fuse` folds the active ones into the base weights (faster sampling) and
`unfuse` takes them out again.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from nanosora.atomic import atomic_path

FILE = "pytorch_lora_weights.safetensors"
SETTINGS = "lora_config.json"
PREFIX = "transformer."
# every linear layer of attention, cross-attention and the MLP in each block; not the adaLN
# modulation (ada), whose zero start the adapter would leave alone anyway
TARGETS = ("attn.qkv", "attn.out", "cross.q", "cross.kv", "cross.out", "mlp.0", "mlp.2")


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 8
    alpha: float = 8.0  # the update is scaled by alpha / rank
    targets: tuple[str, ...] = TARGETS

    def validate(self) -> None:
        if not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"LoRA rank {self.rank!r} is not valid: use a whole number of 1 or more")
        if not self.alpha > 0:
            raise ValueError(f"LoRA alpha {self.alpha!r} is not valid: use a positive number")
        unknown = [t for t in self.targets if t not in TARGETS]
        if not self.targets or unknown:
            raise ValueError(
                f"LoRA target modules {list(unknown or self.targets)} are not valid: choose from "
                f"{', '.join(TARGETS)}"
            )


@dataclass(frozen=True)
class AdapterInfo:
    """lora_config.json: how an adapter was made and for which base."""

    settings: LoraSettings
    base_sha256: str
    base_name: str = ""
    steps: int = 0
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        d = {"format": "nanosora-lora", **asdict(self.settings), "base": {"name": self.base_name}}
        d["base"]["dit_sha256"] = self.base_sha256
        d["targets"] = list(self.settings.targets)
        return json.dumps({**d, "steps": self.steps, **self.extra}, indent=2)

    @classmethod
    def read(cls, path: Path) -> AdapterInfo:
        try:
            d = json.loads(path.read_text())
            s = LoraSettings(int(d["rank"]), float(d["alpha"]), tuple(d["targets"]))
            return cls(
                s, str(d["base"]["dit_sha256"]), str(d["base"].get("name", "")), int(d.get("steps", 0))
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a readable LoRA settings file ({e})") from None


def base_sha256(model_dir: str | Path) -> str:
    """The identity of a base model: the SHA-256 of its transformer weights file."""
    h = hashlib.sha256()
    with open(Path(model_dir) / "dit.safetensors", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def add(dit: torch.nn.Module, settings: LoraSettings, name: str = "default") -> torch.nn.Module:
    """Inject a fresh adapter (B = 0: the model is unchanged until it trains) named `name`."""
    from peft import LoraConfig, inject_adapter_in_model

    settings.validate()
    cfg = LoraConfig(
        r=settings.rank, lora_alpha=settings.alpha, target_modules=list(settings.targets), lora_dropout=0.0
    )
    return inject_adapter_in_model(cfg, dit, adapter_name=name)


def state_dict(dit: torch.nn.Module, name: str = "default") -> dict[str, torch.Tensor]:
    """The adapter's weights under diffusers/PEFT keys (transformer.<module>.lora_A.weight)."""
    from peft import get_peft_model_state_dict

    sd = get_peft_model_state_dict(dit, adapter_name=name)
    return {PREFIX + k: v.detach().contiguous() for k, v in sd.items()}


def save(folder: str | Path, dit: torch.nn.Module, info: AdapterInfo, name: str = "default") -> Path:
    """Write the adapter file and its settings into `folder`, each atomically."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / FILE) as tmp:
        save_file(state_dict(dit, name), str(tmp), metadata={"format": "pt"})
    with atomic_path(folder / SETTINGS) as tmp:
        tmp.write_text(info.to_json())
    return folder / FILE


def resolve(path: str | Path) -> Path:
    """An adapter file, or a folder holding pytorch_lora_weights.safetensors."""
    p = Path(path)
    if p.is_dir():
        p = p / FILE
    if not p.is_file():
        raise ValueError(f"{path}: no LoRA file there (give {FILE} or the folder that holds it)")
    return p


def parse_spec(text: str) -> tuple[str, float]:
    """FILE or FILE:SCALE (scale 1 by default), as --lora takes it."""
    path, _, scale = text.rpartition(":")
    if path and scale:
        try:
            return path, float(scale)
        except ValueError:
            pass
    return text, 1.0


def load(
    dit: torch.nn.Module, path: str | Path, base: str, scale: float = 1.0, name: str = "default"
) -> AdapterInfo:
    """Load the adapter at `path` onto `dit` as `name`, with `scale`; `base` is the SHA-256
    of the model's dit.safetensors. Refuses an adapter trained for another base, or one whose
    shapes do not fit this transformer."""
    from peft import set_peft_model_state_dict
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = resolve(path)
    settings_file = p.with_name(SETTINGS)
    if not settings_file.exists():
        raise ValueError(f"{p}: no {SETTINGS} beside it, so its base model is unknown: it is not loaded")
    info = AdapterInfo.read(settings_file)
    if info.base_sha256 != base:
        raise ValueError(
            f"{p} was trained for another base model ({info.base_name or 'unnamed'}, transformer "
            f"{info.base_sha256[:12]}); this model's transformer is {base[:12]}: load it onto the "
            "model it was trained on"
        )
    try:
        sd = load_file(str(p))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{p}: not a readable safetensors file ({e})") from None
    if not all(k.startswith(PREFIX) for k in sd):
        raise ValueError(f"{p}: keys must start with {PREFIX!r} (diffusers/PEFT LoRA format)")
    add(dit, info.settings, name)
    try:
        res = set_peft_model_state_dict(dit, {k[len(PREFIX) :]: v for k, v in sd.items()}, adapter_name=name)
    except RuntimeError as e:  # shapes that do not fit
        raise ValueError(f"{p}: its weights do not fit this transformer ({e})") from None
    if res.unexpected_keys:
        raise ValueError(f"{p}: weights for modules this transformer lacks: {res.unexpected_keys[:3]}")
    activate(dit, {**scales(dit), name: scale})
    return info


def _layers(dit: torch.nn.Module):
    # a module that PEFT has not been imported to make is no LoRA layer: asking without the
    # import keeps every plain generation (which reports its adapters) from loading PEFT
    # and transformers, seconds of a cold start
    peft_lora = sys.modules.get("peft.tuners.lora")
    if peft_lora is None:
        return []
    return [m for m in dit.modules() if isinstance(m, peft_lora.LoraLayer)]


def scales(dit: torch.nn.Module) -> dict[str, float]:
    """The active adapters and their scales, as PEFT's layers hold them (scaling is the
    scale times alpha / rank)."""
    layers = _layers(dit)
    if not layers or layers[0].disable_adapters:
        return {}
    m = layers[0]
    return {a: round(m.scaling[a] * m.r[a] / m.lora_alpha[a], 6) for a in m.active_adapters}


def activate(dit: torch.nn.Module, active: dict[str, float]) -> None:
    """Make exactly these adapters active, each at its scale (an empty dict: none)."""
    layers = _layers(dit)
    if active and not layers:
        raise ValueError(f"no LoRA adapters are loaded, so {sorted(active)} cannot be used")
    for m in layers:
        if m.merged:
            raise ValueError("the adapters are fused: unfuse them before changing which are active")
        known = set(m.lora_A)
        missing = set(active) - known
        if missing:
            raise ValueError(f"no LoRA adapter named {sorted(missing)}; loaded: {sorted(known)}")
        for a in known:
            m.set_scale(a, active.get(a, 0.0))
        m.set_adapter(sorted(active) or sorted(known))
        m.enable_adapters(bool(active))


def fuse(dit: torch.nn.Module) -> None:
    """Fold the active adapters into the base weights: sampling then costs what the base costs."""
    for m in _layers(dit):
        if not m.merged and not m.disable_adapters:
            m.merge()


def unfuse(dit: torch.nn.Module) -> None:
    for m in _layers(dit):
        if m.merged:
            m.unmerge()
