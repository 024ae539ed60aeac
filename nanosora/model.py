"""The Python API: `nanosora.load()` and `Model.generate(...)`.

    model = nanosora.load()                       # the shipped default model
    video = model.generate("a red circle moves right", seconds=2, seed=1)
    video.save("red.mp4")

`generate` turns its keywords into one request (request.GenerationRequest: the mode, from
the arguments, and every input checked before any compute); `run` builds the mode's
timeline and fills it with pipeline.fill. The CLI and the server build the same request.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nanosora import __version__, modeldir, vocabulary
from nanosora.generation import expand, modes, pipeline
from nanosora.generation.modes import as_frames, resize
from nanosora.generation.request import GenerationRequest, clip_frames, frames_for
from nanosora.generation.timeline import Timeline
from nanosora.modelconfig import ModelConfig
from nanosora.networks import guided
from nanosora.video import Video


def default_model_path() -> Path:
    return Path(__file__).resolve().parent.parent / "models" / "default"


def adapter_specs(lora) -> dict[str, tuple[str, float]]:
    """LoRA adapters as load() takes them -> {name: (file, scale)}; the name is the file's
    folder (or file) name, made unique."""
    from nanosora.networks.lora import parse_spec

    out: dict[str, tuple[str, float]] = {}
    if isinstance(lora, dict):  # named: {name: "FILE[:SCALE]" or (file, scale)}
        for name, item in lora.items():
            out[name] = (str(item[0]), float(item[1])) if isinstance(item, tuple) else parse_spec(str(item))
        return out
    items = [lora] if isinstance(lora, (str, Path, tuple)) else list(lora)
    for item in items:
        if isinstance(item, tuple):
            file, scale = str(item[0]), float(item[1])
        else:
            file, scale = parse_spec(str(item))
        p = Path(file)
        stem = p.name if p.is_dir() or p.suffix != ".safetensors" else (p.parent.name or p.stem)
        name, k = stem or "lora", 2
        while name in out:
            name, k = f"{stem}-{k}", k + 1
        out[name] = (file, scale)
    return out


@dataclass
class Model:
    """A loaded model directory: autoencoder, transformer, text encoder and settings."""

    vae: torch.nn.Module
    dit: torch.nn.Module
    text_encoder: object
    config: ModelConfig
    path: Path
    planner: torch.nn.Module | None = None  # planner.Planner, for a transformer that reads layouts

    @property
    def fps(self) -> int:
        return self.config.fps

    @property
    def window(self) -> int:
        """Frames the transformer was trained on, the length of one generation window."""
        return self.config.window

    @functools.cached_property
    def known_words(self) -> frozenset[str]:
        """The words its training captions used; for a Flatland model also every word the
        prompt parser maps (its paraphrases), which the expansion turns into caption words."""
        known = set(self.config.vocabulary)
        if self.config.expands_flatland:
            known |= vocabulary.parser_words() if known else vocabulary.flatland()
        return frozenset(known)

    def unknown_words(self, prompt: str | list[str]) -> list[str]:
        """The content words of a prompt (or of every shot's) that the model never saw."""
        prompts = [prompt] if isinstance(prompt, str) else prompt
        return vocabulary.unknown(" ".join(prompts), self.known_words)

    def plan(self, caption: str, aspect: float, seconds: float):
        """The planner's layout for a caption (planner.Plan), or None for a model without one."""
        from nanosora.networks import planner

        if self.planner is None:
            return None
        return planner.plan(self.planner, self.text_encoder, caption, aspect, seconds)

    def user_plan(self, paths, planned):
        """A request's own layout as a plan (user_layout.py), refused for a model that does
        not read layouts or for more objects than the planner finds in the caption."""
        from nanosora.generation import user_layout

        if self.planner is None:
            raise ValueError(
                f"layout: the model {self.config.name!r} does not read layouts (its transformer was "
                "trained without them); generate without a layout"
            )
        if planned is not None and len(paths) > len(planned.sentences):
            raise ValueError(
                f"layout names {len(paths)} objects, but the caption describes {len(planned.sentences)}: "
                "give one entry per object the prompt names"
            )
        return user_layout.plan_of(paths, self.text_encoder)

    def encode_text(self, texts: list[str]):
        from nanosora.networks.text import pad

        return pad(self.text_encoder.encode_tokens(texts))

    def generate(self, prompt: str = "", *, callback=None, **kwargs) -> Video:
        """Generate a video (a one-frame video is an image). The mode follows the arguments:

        - text to video: `prompt` (frames 1: text to image);
        - image to video: `image` (a path, PIL image or array) placed at `image_frame`;
        - extend: `video` and `extend="forward"|"backward"`, adding `seconds`;
        - edit: `video` and `strength` in (0, 1] (how much may change);
        - connect: `connect=(video_a, video_b)`, a transition of `seconds` between them;
        - loop: `loop=True` with text or an image: the last frame flows into the first;
        - shots: `shots=[{"prompt": ..., "seconds": ...}, ...]`, one cut after another.

        Other keywords: width, height, seconds or frames, fps, seed, negative_prompt, steps,
        guidance, guidance_until, cond_guidance, one_pass_guidance, expand,
        expand_hook, watermark (request.GenerationRequest and request.Sampling say what each
        does). `callback(step, total, latents)` is called after every sampling step.

        A prompt with content words the model never saw in training is still made, with a
        vocabulary.UnknownWordsWarning naming them and the list in metadata["unknown_words"]."""
        return self.run(GenerationRequest.from_kwargs(prompt, **kwargs), callback)

    def run(self, req: GenerationRequest, callback: Callable | None = None) -> Video:
        """Make the video a request describes: its mode's timeline, filled by pipeline.fill."""
        if req.lora is not None and req.lora != self.lora_scales():  # this video's adapters
            saved = self.lora_scales()
            self.use_lora(req.lora)
            try:
                return self.run(dataclasses.replace(req, lora=None), callback)
            finally:
                self.use_lora(saved)
        if req.fps is None:  # the frame limit depends on the fps: checked again with the model's
            req = dataclasses.replace(req, fps=self.fps)
        fps, mode, seed, sp = req.fps, req.mode, req.seed, req.sampling
        t0 = time.perf_counter()
        unknown = self.unknown_words(req.prompts)
        vocabulary.warn(unknown)
        null = self.encode_text([req.negative_prompt])
        flatland = self.config.expands_flatland

        not_expanded: list[str] = []

        def noted(fn, *args):
            """fn(*args), with the expander's warnings kept for the metadata and said again."""
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", expand.ExpansionWarning)
                out = fn(*args)
            for w in caught:
                if issubclass(w.category, expand.ExpansionWarning):
                    not_expanded.append(str(w.message))
                warnings.warn(w.message, w.category, stacklevel=4)
            return out

        plans = []  # (plan, frames it covers) of each shot or clip, for the metadata

        def fill(tl, text, strength=1.0, refs=None, plan=None, plan_from=0):
            # a fill is shown what came before the cut (req.after) unless given other refs
            return pipeline.fill(
                self.vae,
                self.dit,
                tl,
                text,
                null,
                seed,
                self.window,
                sp,
                strength=strength,
                callback=callback,
                references=self.config.references,
                refs=before if refs is None else refs,
                plan=plan,
                fps=fps,
                plan_from=plan_from,
            )

        g = modes.given(req, fps)
        ref, width, height = g.ref, g.width, g.height
        # what came before the cut: its last frame shows who is in the world (reference.py)
        before = None if req.after is None else resize(as_frames(req.after, "after")[-1:], width, height)
        if mode == "shots":
            secs = [s.seconds for s in req.shots]
            prompts = [s.prompt for s in req.shots]
            if req.expand:  # one story: "the blue square" of shot 2 is shot 1's blue square
                captions = noted(
                    expand.expand_shots, prompts, secs, width / height, seed, req.expand_hook, flatland
                )
            else:
                captions = prompts
            parts = []
            for cap, s in zip(captions, secs, strict=True):
                # across the cut, the shot before's last frame shows who is in the story
                last = parts[-1][-1:] if parts else None
                plan = self.plan(cap, width / height, s)
                tl = Timeline.blank(frames_for(s, fps), height, width)
                parts.append(fill(tl, self.encode_text([cap]), refs=last, plan=plan)[: clip_frames(s, fps)])
                plans.append((plan, len(parts[-1])))
            out = np.concatenate(parts)
        else:
            secs = g.new / fps or 1.0 / fps
            cap = noted(self.caption, req, ref, secs, width / height) if req.expand else req.prompt
            captions = [cap]
            text = self.encode_text([cap])
            # the caption's time starts where its frames do: after the frames an extension or
            # a connect continues (modes.Mode.planned says where a plan has nothing to say)
            built = modes.MODES[mode]
            plan = self.plan(cap, width / height, secs) if built.planned(req) else None
            if req.layout is not None:
                plan = self.user_plan(req.layout, plan)
            out = built.build(req, g, functools.partial(fill, text=text, plan=plan))
            plans.append((plan, len(out)))
        meta = {
            "generator": f"nanosora {__version__}",
            "model": self.config.name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            # a loop is recorded as what it loops (text+loop, image+loop), as files always said
            "mode": mode if mode != "loop" else ("image" if ref is not None else "text") + "+loop",
            "prompt": req.prompt if mode != "shots" else req.prompts,
            "caption": captions[0] if len(captions) == 1 else captions,
            "negative_prompt": req.negative_prompt,
            "seed": seed,
            "width": width,
            "height": height,
            "frames": len(out),
            "fps": fps,
            "steps": sp.steps,
            "guidance": sp.guidance,
            "guidance_until": sp.guidance_until,
            "guidance_passes": self.guidance_passes(sp.guidance, sp.one_pass_guidance),
            "seconds_to_generate": round(time.perf_counter() - t0, 3),
        }
        if unknown:
            meta["unknown_words"] = unknown
        if not_expanded:  # the expander's reasons, for a prompt it could not place
            meta["not_expanded"] = not_expanded
        # what the clip followed: each object's words and boxes every latent frame (a list per shot)
        laid = [p.to_json(np.arange(0, n, 4) / fps) for p, n in plans if p is not None]
        if laid:
            meta["layout"] = laid if mode == "shots" else laid[0]
        if req.story:
            meta["story"] = list(req.story)
        adapters = self.lora_scales()
        if adapters:
            meta["lora"] = adapters
        if ref is not None and mode in ("image", "loop"):
            meta["image_frame"] = req.image_frame
        if mode == "edit":
            meta["strength"] = req.strength
        if mode == "extend":
            meta["extend"] = req.direction
        if req.watermark:
            from nanosora import provenance

            meta["watermark"] = provenance.MARK
            return provenance.SealedVideo(provenance.embed(out), fps, meta)
        return Video(out, fps, meta)

    def caption(self, req: GenerationRequest, ref: np.ndarray | None, seconds: float, aspect: float) -> str:
        """The detailed caption of a request that is not shots. Given frames are re-captioned
        (expand.expand_given): the image, the clip an extension continues (read at the end
        it continues from) and the first clip of a connect. An edit's prompt says what to
        change, so it is expanded on its own."""
        args = (seconds, aspect, req.seed, req.expand_hook, self.config.expands_flatland)
        if req.story and (ref is None or req.mode == "edit"):  # after earlier shots: one story
            n = len(req.story) + 1
            return expand.expand_shots([*req.story, req.prompt], [seconds] * n, *args[1:])[-1]
        if ref is None or req.mode == "edit":
            return expand.expand_prompt(req.prompt, *args)
        backward = req.mode == "extend" and req.direction == "backward"
        # an image placed later than the first frame is where the clip ends, not starts
        places = not backward and (req.mode not in ("image", "loop") or req.image_frame == 0)
        return expand.expand_given(req.prompt, ref, self.fps, *args, end=not backward, places=places)

    def lora_scales(self) -> dict[str, float]:
        """The active LoRA adapters by name, with their scales."""
        from nanosora.networks import lora

        return lora.scales(self.dit)

    def use_lora(self, scales: dict[str, float]) -> None:
        """Make exactly these loaded adapters active, at these scales ({}: the base model)."""
        from nanosora.networks import lora

        lora.activate(self.dit, scales)

    def fuse_lora(self) -> None:
        """Fold the active adapters into the transformer's weights (sampling as fast as the base)."""
        from nanosora.networks import lora

        lora.fuse(self.dit)

    def unfuse_lora(self) -> None:
        from nanosora.networks import lora

        lora.unfuse(self.dit)

    def guidance_passes(self, guidance: float, one_pass_guidance: bool = True) -> int:
        """Transformer passes a guided text-to-video step makes: 1 for a guidance-distilled
        model (or guidance 1), else 2."""
        if guidance == 1.0 or (one_pass_guidance and guided.one_pass_serves(self.dit)):
            return 1
        return 2


def load(
    path: str | Path | None = None,
    int8: bool | str = False,
    compile: bool = False,
    bf16: bool = False,
    lora=None,
) -> Model:
    """Load a model directory (None: the shipped default model). `int8`: the transformer's
    linear layers quantized to int8 with dynamic activation scales (CPU; True, or a back end
    of quant.BACKENDS); `bf16`: the
    transformer run under bf16 autocast (a CPU with native bf16); `compile`: the transformer
    compiled with torch.compile (the first generation pays the compile time). `lora`: LoRA
    adapters trained on this model (`nanosora train lora`), as a file or folder, "FILE:SCALE",
    a (file, scale) pair, or a list of them; each is active at its scale (Model.use_lora
    changes that), and with int8 or compile they are fused into the weights first."""
    from nanosora import device
    from nanosora.networks.text import TextEncoder

    if int8 and bf16:
        raise ValueError("int8 and bf16 are two alternative precisions: choose one")

    path = Path(path) if path is not None else default_model_path()
    cfg = modeldir.read_config(path)
    vae = modeldir.load_vae(path)
    dit = modeldir.load_dit(path)
    if lora:
        from nanosora.networks import lora as lora_mod

        base = lora_mod.base_sha256(path)
        for name, (file, scale) in adapter_specs(lora).items():
            lora_mod.load(dit, file, base, scale, name)
        if int8 or compile:  # quantizing or compiling the adapter layers would be wasted work
            lora_mod.fuse(dit)
    if int8:
        from nanosora.networks import quant

        dit = quant.int8(dit, int8 if isinstance(int8, str) else quant.DEFAULT)
    if bf16:
        dit = device.CPUBF16(dit)
    if compile:
        dit = torch.compile(dit, dynamic=True)
    planner = modeldir.load_planner(path) if cfg.planner is not None else None
    return Model(vae, dit, TextEncoder.of(cfg.text), cfg, path, planner)
