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
from nanosora.dit import DiTConfig
from nanosora.planner import PlannerConfig

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
        out = {"format": FORMAT, "name": self.name, "vae": to_dict(self.vae)}
        if self.dit is not None:
            out["dit"] = to_dict(self.dit)
        out |= {
            "text": dataclasses.asdict(self.text),
            "fps": self.fps,
            "window": self.window,
            "trained_on": self.trained_on,
        }
        if self.recipe is not None:
            out["recipe"] = self.recipe
        if self.training:
            out["training"] = self.training
        if self.trained_steps is not None:
            out["trained_steps"] = self.trained_steps
        if self.vocabulary:
            out["vocabulary"] = list(self.vocabulary)
        if self.guidance_distilled:
            out["guidance_distilled"] = True
        if self.references:
            out["references"] = True
        if self.planner is not None:
            out["planner"] = dataclasses.asdict(self.planner)
        return out


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
    try:
        vae = from_dict(VAEConfig, d["vae"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: bad 'vae' section ({e})") from None
    dit = None
    distilled = d.get("guidance_distilled", False)
    if not isinstance(distilled, bool):
        raise ValueError(f"{where}: 'guidance_distilled' must be true or false")
    if "dit" in d:
        section = d["dit"]
        try:
            dit = from_dict(DiTConfig, section)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: bad 'dit' section ({e})") from None
    try:
        text = from_dict(TextConfig, d.get("text", {}))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: bad 'text' section ({e})") from None
    # run folders keep each record at the top level while training; exported ones in "training"
    runs = dict(d.get("training", {})) | {k: d[k] for k in RUN_RECORDS if k in d}
    rest = {k: d[k] for k in ("name", "fps", "window", "trained_on", "recipe", "trained_steps") if k in d}
    if not isinstance(d.get("references", False), bool):
        raise ValueError(f"{where}: 'references' must be true or false")
    rest["references"] = d.get("references", False)
    vocab = d.get("vocabulary", [])
    if not isinstance(vocab, list) or not all(isinstance(w, str) for w in vocab):
        raise ValueError(f"{where}: 'vocabulary' must be a list of words")
    rest["vocabulary"] = tuple(vocab)
    if "planner" in d:
        try:
            rest["planner"] = from_dict(PlannerConfig, d["planner"])
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: bad 'planner' section ({e})") from None
    cfg = ModelConfig(vae=vae, dit=dit, text=text, training=runs, guidance_distilled=distilled, **rest)
    if (
        not isinstance(cfg.fps, int)
        or not 1 <= cfg.fps <= 30
        or not isinstance(cfg.window, int)
        or cfg.window < 1
    ):
        raise ValueError(f"{where}: fps {cfg.fps!r} (1-30) or window {cfg.window!r} (1 or more) is not valid")
    return cfg
