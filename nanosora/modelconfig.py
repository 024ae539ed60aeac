"""A model directory's config.json as one typed value, read strictly.

    {"format": 1, "name": ..., "vae": {...}, "dit": {...}, "text": {...}, "fps": 8,
     "window": 17, "trained_on": "flatland", "recipe": {...}, "training": {...},
     "vocabulary": [...]}

`build` is the one place a config is made (training, the recipe, distillation, export and
the tests call it); `from_json` is the one place it is read back: a missing section or an
unknown key is an error that names it, never a default picked in silence.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from nanosora.config import VAEConfig, from_dict, to_dict
from nanosora.networks.dit import DiTConfig
from nanosora.networks.planner import PlannerConfig

FORMAT = 1
# records of the runs that made a model (settings, steps): kept as written, for the card
RUN_RECORDS = ("vae_train", "dit_train", "distill_train")
FLATLAND = "flatland"


@dataclass(frozen=True)
class TextConfig:
    """How prompts become the transformer's text tokens (text.TextEncoder)."""

    encoder: str = "minilm"  # 'minilm' (shipped with its package) or a local folder
    max_tokens: int = 128
    sentence_tokens: bool = False  # a token per caption sentence after the word tokens


@dataclass(frozen=True)
class ModelConfig:
    vae: VAEConfig
    dit: DiTConfig | None = None  # None: an autoencoder alone (its training run folder)
    text: TextConfig = TextConfig()
    name: str = "model"
    fps: int = 8
    window: int = 17  # frames the transformer was trained on: one generation window
    # what it was trained on: "flatland", or the data folder's name. Prompt expansion into
    # Flatland captions fits only a Flatland model; others take prompts as written.
    trained_on: str = FLATLAND
    recipe: dict | None = None  # the recipe that made it (recipe.Recipe), if one did
    training: dict = field(default_factory=dict)  # run records by name (RUN_RECORDS)
    trained_steps: int | None = None  # set when exported from a chosen checkpoint
    # every word of its training captions (vocabulary.py): what a prompt may talk about
    vocabulary: tuple[str, ...] = ()
    # its transformer also takes the guidance scale (guided.GuidedDiT, made by distill.py)
    guidance_distilled: bool = False
    # its transformer was trained with reference frames (reference.py): generation shows every
    # shot the shot before, and every later window of a clip the clip's first frame
    references: bool = False
    # its layout planner (planner.py), for a transformer that reads layouts (DiTConfig.layout)
    planner: PlannerConfig | None = None

    @property
    def expands_flatland(self) -> bool:
        return self.trained_on == FLATLAND

    def to_json(self) -> dict:
        """The config as config.json holds it, field by field from the dataclass: sections as
        objects, and a field at its default left out (but for those every model states)."""
        out: dict = {"format": FORMAT}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None or (f.name not in ALWAYS and v == _default(f)):
                continue
            out[f.name] = to_dict(v) if f.name in SECTIONS else list(v) if isinstance(v, tuple) else v
        return out


# the sections of a config.json, each a config class of its own, read strictly
SECTIONS = {"vae": VAEConfig, "dit": DiTConfig, "text": TextConfig, "planner": PlannerConfig}
# written even at their defaults: what a reader of any config.json expects to find
ALWAYS = ("name", "vae", "text", "fps", "window", "trained_on")
# the JSON a plain field's annotation accepts (bool is not an int here)
_KINDS = {
    "str": (str, "a string"),
    "int": (int, "a whole number"),
    "bool": (bool, "true or false"),
    "dict": (dict, "an object"),
    "tuple[str, ...]": (list, "a list of words"),
}


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING


def _plain(name: str, annotation: str, v, where: str):
    """A plain field's value read back, checked against its annotation."""
    kind, what = _KINDS[annotation.replace(" | None", "")]
    ok = isinstance(v, kind) and not (kind is int and isinstance(v, bool))
    if kind is list:
        ok = ok and all(isinstance(w, str) for w in v)
    if not ok:
        raise ValueError(f"{where}: '{name}' must be {what}")
    return tuple(v) if kind is list else v


def build(
    vae: VAEConfig,
    dit: DiTConfig | None = None,
    *,
    text: TextConfig = TextConfig(),
    runs: dict | None = None,
    **fields,
) -> ModelConfig:
    """The one builder: component configs, a text config, run records, other fields by name."""
    return ModelConfig(vae=vae, dit=dit, text=text, training=dict(runs or {}), **fields)


_TOP = {f.name for f in dataclasses.fields(ModelConfig)} | {"format", *RUN_RECORDS}


def from_json(d: dict, where: str = "config.json") -> ModelConfig:
    """Read a config.json's content strictly; ValueError names the missing or unknown key."""
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ValueError(f'{where}: not a nanosora model config (expected "format": {FORMAT})')
    unknown = sorted(set(d) - _TOP)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(_TOP)}")
    if "vae" not in d:
        raise ValueError(f"{where}: has no 'vae' section")
    got = {}
    for f in dataclasses.fields(ModelConfig):
        if f.name not in d:
            continue
        if f.name in SECTIONS:
            try:
                got[f.name] = from_dict(SECTIONS[f.name], d[f.name])
            except (TypeError, ValueError) as e:
                raise ValueError(f"{where}: bad '{f.name}' section ({e})") from None
        else:
            got[f.name] = _plain(f.name, f.type, d[f.name], where)
    # run folders keep each record at the top level while training; exported ones in "training"
    got["training"] = dict(got.get("training", {})) | {k: d[k] for k in RUN_RECORDS if k in d}
    cfg = ModelConfig(**got)
    if (
        not isinstance(cfg.fps, int)
        or not 1 <= cfg.fps <= 30
        or not isinstance(cfg.window, int)
        or cfg.window < 1
    ):
        raise ValueError(f"{where}: fps {cfg.fps!r} (1-30) or window {cfg.window!r} (1 or more) is not valid")
    return cfg
