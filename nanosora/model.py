"""The Python API: `nanosora.load()` and `Model.generate(...)`.

    model = nanosora.load()                       # the shipped default model
    video = model.generate("a red circle moves right", seconds=2, seed=1)
    video.save("red.mp4")

`generate` checks every input before any compute, picks the mode from the arguments
(text, image, extend, edit, connect, loop, shots), builds the mode's timeline and fills it
with pipeline.fill, the same functions the CLI and the server call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nanosora import __version__, flow, modeldir, pipeline
from nanosora.config import DEFAULT_GUIDANCE, DEFAULT_GUIDANCE_UNTIL, DEFAULT_STEPS, SAMPLERS
from nanosora.modelconfig import ModelConfig
from nanosora.timeline import Timeline
from nanosora.vae import check_size
from nanosora.video import Video

MAX_SECONDS = 60.0
EXTEND_DIRECTIONS = ("forward", "backward")


def default_model_path() -> Path:
    return Path(__file__).resolve().parent.parent / "models" / "default"


def as_frames(x, what: str) -> np.ndarray:
    """A path, Video, PIL image or uint8 array -> uint8 (T, H, W, 3)."""
    from nanosora import video

    if isinstance(x, (str, Path)):
        return video.read(x).frames
    if isinstance(x, Video):
        return x.frames
    if hasattr(x, "convert"):  # a PIL image
        return np.asarray(x.convert("RGB"))[None]
    a = np.asarray(x)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8 or not len(a):
        raise ValueError(
            f"{what} must be a file path, a PIL image or a uint8 array (H, W, 3) or (T, H, W, 3); "
            f"got {a.dtype} {a.shape}"
        )
    return a


def resize(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Every frame resized to width x height (no-op when it already is)."""
    from PIL import Image

    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.BICUBIC)) for f in frames])


def resolve_size(width: int | None, height: int | None, ref: np.ndarray | None) -> tuple[int, int]:
    """The output size: as asked; else that of the given image or video, rounded to multiples
    of 16; else 64x64."""

    def snap(v):
        return max(16, 16 * round(v / 16))

    if ref is not None:
        width = width or snap(ref.shape[2])
        height = height or snap(ref.shape[1])
    width, height = width or 64, height or 64
    check_size(height, width, 16)
    return width, height


def frames_for(seconds: float, fps: int) -> int:
    """Frames of a clip of `seconds`: round(seconds * fps) + 1, snapped to 1 + 4k."""
    if not 0 <= seconds <= MAX_SECONDS:
        raise ValueError(f"seconds {seconds} is not valid: use 0 (one frame) to {MAX_SECONDS:g}")
    n = int(round(seconds * fps)) + 1
    return 1 + 4 * max(0, round((n - 1) / 4))


def check_shots(shots, expand: bool = True) -> None:
    """A shot list as generate takes it, checked before anything is loaded: a non-empty list of
    {'prompt', 'seconds'} with a prompt each, at most 60 s each and in all, and (when prompts
    are expanded) no shot naming as known an object no earlier shot introduced."""
    if not shots or not isinstance(shots, list):
        raise ValueError("shots must be a non-empty list of {'prompt': ..., 'seconds': ...}")
    for i, s in enumerate(shots):
        if not isinstance(s, dict) or not isinstance(s.get("prompt"), str):
            raise ValueError(f"shot {i + 1} must be {{'prompt': str, 'seconds': number}}, got {s!r}")
        if not s["prompt"].strip():
            raise ValueError(f"shot {i + 1} has an empty prompt: every shot says what it shows")
        secs = s.get("seconds", 2.0)
        if not isinstance(secs, (int, float)) or not 0 < secs <= MAX_SECONDS:
            raise ValueError(f"shot {i + 1}: seconds {secs!r} is not valid: use a number in (0, 60]")
    if sum(float(s.get("seconds", 2.0)) for s in shots) > MAX_SECONDS:
        raise ValueError(f"the shots last more than {MAX_SECONDS:g} seconds in all")
    if expand:
        pipeline.shot_references([s["prompt"] for s in shots])


@dataclass
class Model:
    """A loaded model directory: autoencoder, transformer, text encoder and settings."""

    vae: torch.nn.Module
    dit: torch.nn.Module
    text_encoder: object
    config: ModelConfig
    path: Path

    @property
    def fps(self) -> int:
        return self.config.fps

    @property
    def window(self) -> int:
        """Frames the transformer was trained on, the length of one generation window."""
        return self.config.window

    def encode_text(self, texts: list[str]):
        from nanosora.text import pad

        return pad(self.text_encoder.encode_tokens(texts))

    def generate(
        self,
        prompt: str = "",
        *,
        width: int | None = None,
        height: int | None = None,
        seconds: float | None = None,
        frames: int | None = None,
        fps: int | None = None,
        steps: int = DEFAULT_STEPS,
        guidance: float = DEFAULT_GUIDANCE,
        guidance_until: float = DEFAULT_GUIDANCE_UNTIL,
        seed: int = 0,
        negative_prompt: str = "",
        image=None,
        image_frame: int = 0,
        video=None,
        extend: str | None = None,
        strength: float | None = None,
        connect: tuple | None = None,
        loop: bool = False,
        shots: list[dict] | None = None,
        cond_guidance: float = 1.0,
        expand: bool = True,
        expand_hook: Callable[[str], str] | None = None,
        sampler: str = "euler",
        watermark: bool = True,
        callback: Callable[[int, int, torch.Tensor], None] | None = None,
        one_pass_guidance: bool = True,
    ) -> Video:
        """Generate a video (a one-frame video is an image). The mode follows the arguments:

        - text to video: `prompt` (frames 1: text to image);
        - image to video: `image` (a path, PIL image or array) placed at `image_frame`;
        - extend: `video` and `extend="forward"|"backward"`, adding `seconds`;
        - edit: `video` and `strength` in (0, 1] (how much may change);
        - connect: `connect=(video_a, video_b)`, a transition of `seconds` between them;
        - loop: `loop=True` with text or an image: the last frame flows into the first;
        - shots: `shots=[{"prompt": ..., "seconds": ...}, ...]`, one cut after another.

        `seconds` (or `frames`) is the clip's length, or for extend and connect the length
        added. `guidance_until`: guidance stops once the sampling time (1 noise, 0 data) falls
        to it (so an edit at a strength at or below it runs unguided); 0 guides every step.
        `callback(step, total, latents)` is called after every sampling step.
        `one_pass_guidance`: a guidance-distilled model (distill.py) guides in one transformer
        pass per step; False runs classifier-free guidance's two passes with it instead.
        `watermark`: mark the frames invisibly (provenance.py); Video.save then seals the file."""
        fps = fps or self.fps
        mode = self._check(locals())
        t0 = time.perf_counter()
        run = dict(
            steps=steps,
            guidance=guidance,
            guidance_until=guidance_until,
            cond_guidance=cond_guidance,
            method=sampler,
            one_pass_guidance=one_pass_guidance,
        )
        null = self.encode_text([negative_prompt])

        def caption_of(p: str, secs: float, w: int, h: int) -> tuple[str, tuple]:
            flatland = self.config.expands_flatland
            cap = (
                pipeline.expand_prompt(p, secs or 1.0 / fps, w / h, seed, expand_hook, flatland)
                if expand
                else p
            )
            return cap, self.encode_text([cap])

        def fill(tl, text, strength=1.0):
            return pipeline.fill(
                self.vae,
                self.dit,
                tl,
                text,
                null,
                seed,
                self.window,
                strength=strength,
                callback=callback,
                **run,
            )

        ref = None
        if mode == "image":
            ref = as_frames(image, "image")[:1]
        elif mode in ("extend", "edit"):
            ref = as_frames(video, "video")
        elif mode == "connect":
            ref = as_frames(connect[0], "the first video of connect")
        width, height = resolve_size(width, height, ref)
        if ref is not None:
            ref = resize(ref, width, height)
        new = frames
        if new is None:
            default = 1.0 if mode == "connect" else 2.0
            secs = seconds if seconds is not None else default
            new = frames_for(secs, fps) if mode in ("text", "image") else int(round(secs * fps))
        captions = []
        if mode == "shots":
            secs = [float(shot.get("seconds", 2.0)) for shot in shots]
            prompts = [shot["prompt"] for shot in shots]
            if expand:  # one story: "the blue square" of shot 2 is shot 1's blue square
                flatland = self.config.expands_flatland
                captions = pipeline.expand_shots(prompts, secs, width / height, seed, expand_hook, flatland)
            else:
                captions = prompts
            parts = []
            for i, (cap, s) in enumerate(zip(captions, secs, strict=True)):
                n = frames_for(s, fps) - (1 if i else 0)
                parts.append(fill(Timeline.blank(max(1, n), height, width), self.encode_text([cap])))
            out = np.concatenate(parts)
        else:
            cap, text = caption_of(prompt, new / fps, width, height)
            captions.append(cap)
            if mode == "connect":
                b = resize(as_frames(connect[1], "the second video of connect"), width, height)
                tl, head, tail = pipeline.connect_timeline(ref, b, new)
                out = np.concatenate([head, fill(tl, text), tail])
            elif mode == "extend":
                out = fill(pipeline.extend_timeline(ref, new, backward=extend == "backward"), text)
            elif mode == "edit":
                tl = Timeline.blank(len(ref), height, width)
                tl.init = ref
                out = fill(tl, text, strength=strength)
            else:
                tl = Timeline.blank(new, height, width)
                if mode == "image":
                    tl.put(image_frame, ref)
                out = fill(tl, text)
                if loop:
                    out = fill(pipeline.loop_timeline(out), text)[: len(out)]
        meta = {
            "generator": f"nanosora {__version__}",
            "model": self.config.name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "mode": mode + ("+loop" if loop else ""),
            "prompt": prompt if mode != "shots" else [s["prompt"] for s in shots],
            "caption": captions[0] if len(captions) == 1 else captions,
            "negative_prompt": negative_prompt,
            "seed": seed,
            "width": width,
            "height": height,
            "frames": len(out),
            "fps": fps,
            "steps": steps,
            "guidance": guidance,
            "guidance_until": guidance_until,
            "guidance_passes": self.guidance_passes(guidance, one_pass_guidance),
            "sampler": sampler,
            "seconds_to_generate": round(time.perf_counter() - t0, 3),
        }
        if watermark:
            from nanosora import provenance

            out, meta["watermark"] = provenance.embed(out), provenance.MARK
        if mode == "image":
            meta["image_frame"] = image_frame
        if mode == "edit":
            meta["strength"] = strength
        if mode == "extend":
            meta["extend"] = extend
        return Video(out, fps, meta)

    def guidance_passes(self, guidance: float, one_pass_guidance: bool = True) -> int:
        """Transformer passes a guided text-to-video step makes: 1 for a guidance-distilled
        model (or guidance 1), else 2."""
        if guidance == 1.0 or (one_pass_guidance and flow.one_pass_serves(self.dit.cfg)):
            return 1
        return 2

    def _check(self, a: dict) -> str:
        """Every argument checked before any compute; returns the mode."""
        if a["steps"] < 1:
            raise ValueError(f"steps {a['steps']} is not valid: use 1 or more")
        for key in ("guidance", "cond_guidance"):
            if a[key] < 0:
                raise ValueError(f"{key} {a[key]} is not valid: use 0 or more")
        flow.check_until(a["guidance_until"])
        if a["sampler"] not in SAMPLERS:
            raise ValueError(f"sampler {a['sampler']!r} is not known: use one of {', '.join(SAMPLERS)}")
        if a["seconds"] is not None and not 0 <= a["seconds"] <= MAX_SECONDS:
            raise ValueError(f"seconds {a['seconds']} is not valid: use 0 (one frame) to {MAX_SECONDS:g}")
        if a["frames"] is not None and not 1 <= a["frames"] <= MAX_SECONDS * a["fps"] + 1:
            raise ValueError(f"frames {a['frames']} is not valid: use 1 to {int(MAX_SECONDS * a['fps']) + 1}")
        modes = {
            "shots": a["shots"] is not None,
            "connect": a["connect"] is not None,
            "extend": a["extend"] is not None,
            "edit": a["strength"] is not None,
            "image": a["image"] is not None,
        }
        chosen = [m for m, on in modes.items() if on]
        if len(chosen) > 1:
            raise ValueError(f"choose one mode, not {' and '.join(chosen)}")
        mode = chosen[0] if chosen else "text"
        if a["video"] is not None and mode not in ("extend", "edit"):
            raise ValueError("a video needs a mode: extend='forward' or 'backward', or strength for an edit")
        if mode in ("extend", "edit") and a["video"] is None:
            raise ValueError(f"{mode} needs a video")
        if mode == "extend" and a["extend"] not in EXTEND_DIRECTIONS:
            raise ValueError(f"extend {a['extend']!r} is not valid: use {' or '.join(EXTEND_DIRECTIONS)}")
        if mode == "edit" and not 0 < a["strength"] <= 1:
            raise ValueError(f"strength {a['strength']} is not valid: use a number in (0, 1]")
        if mode == "connect" and len(a["connect"]) != 2:
            raise ValueError("connect takes two videos (a, b)")
        if a["loop"] and mode not in ("text", "image"):
            raise ValueError(f"loop works with text or an image, not with {mode}")
        if mode == "image":
            secs = a["seconds"] if a["seconds"] is not None else 2.0
            n = a["frames"] or frames_for(secs, a["fps"])
            if not 0 <= a["image_frame"] < n:
                raise ValueError(f"image_frame {a['image_frame']} is not valid: use 0 to {n - 1}")
        if mode == "shots":
            check_shots(a["shots"], a["expand"])
        elif not isinstance(a["prompt"], str):
            raise ValueError(f"prompt must be a string, got {type(a['prompt']).__name__}")
        return mode


def load(
    path: str | Path | None = None, int8: bool = False, compile: bool = False, bf16: bool = False
) -> Model:
    """Load a model directory (None: the shipped default model). `int8`: the transformer's
    linear layers quantized to int8 with dynamic activation scales (CPU); `bf16`: the
    transformer run under bf16 autocast (a CPU with native bf16); `compile`: the transformer
    compiled with torch.compile (the first generation pays the compile time)."""
    from nanosora import dist
    from nanosora.text import TextEncoder

    if int8 and bf16:
        raise ValueError("int8 and bf16 are two alternative precisions: choose one")

    path = Path(path) if path is not None else default_model_path()
    cfg = modeldir.read_config(path)
    vae = modeldir.load_vae(path)
    dit = modeldir.load_dit(path)
    if int8:
        import warnings

        from torch.ao.quantization import quantize_dynamic

        # torch.ao's eager quantization is deprecated in favour of torchao, but it is still the
        # one int8 CPU path that needs no extra package; the warning is about that, not us
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=UserWarning)
            dit = quantize_dynamic(dit, {torch.nn.Linear}, dtype=torch.qint8)
    if bf16:
        dit = dist.CPUBF16(dit)
    if compile:
        dit = torch.compile(dit, dynamic=True)
    enc = TextEncoder(
        cfg.text.encoder, max_tokens=cfg.text.max_tokens, sentence_tokens=cfg.text.sentence_tokens
    )
    return Model(vae, dit, enc, cfg, path)
