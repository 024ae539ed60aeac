"""One generation request: what to make, in which mode, with which sampling settings.

Every front end builds a `GenerationRequest`: `Model.generate`'s keywords (`from_kwargs`),
the CLI and its batch lines, the server's routes. The server's store keeps it as JSON
(`to_json` / `from_json`) and its worker hands it back unchanged; `Model.run` consumes it.
Defaults and limits live here once, and a request is checked when it is made, so a bad one
fails before any model is loaded.

Modes:
    text     the prompt alone (frames 1: text to image)
    image    `image` (a path, PIL image or array) placed at `image_frame`
    extend   `video` continued by `seconds`, `direction` forward or backward
    edit     `video` remade to match the prompt; `strength` in (0, 1] is how much may change
    connect  a transition of `seconds` from `connect[0]` to `connect[1]`
    loop     text, or an image when given: the last frame flows back into the first
    shots    `shots`, one cut after another, read as one story

Any mode but shots may follow earlier shots across a cut (`story`, `after`): a remix does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nanosora.config import DEFAULT_GUIDANCE, DEFAULT_GUIDANCE_UNTIL, DEFAULT_STEPS

MODES = ("text", "image", "extend", "edit", "connect", "loop", "shots")
MAX_SECONDS = 60.0
DEFAULT_SECONDS = 2.0
# a transition is shorter than a clip: it only has to carry one scene into the next
DEFAULT_CONNECT_SECONDS = 1.0
DEFAULT_STRENGTH = 0.6
DIRECTIONS = ("forward", "backward")
# the frame-count limit when the model's fps is not known yet (every shipped model's)
DEFAULT_FPS = 8
# text guidance past this only saturates colours; every surface refuses more
MAX_GUIDANCE = 30.0


def _number(v: Any, what: str, lo: float, hi: float | None = None, lo_open: bool = False) -> None:
    """Refuse v unless it is a number in [lo, hi] ((lo, hi] when lo_open; no hi: unbounded)."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    ok = ok and (v > lo if lo_open else v >= lo) and (hi is None or v <= hi)
    if not ok:
        if hi is None:
            span = f"{lo:g} or more"
        else:
            span = f"in ({lo:g}, {hi:g}]" if lo_open else f"from {lo:g} to {hi:g}"
        raise ValueError(f"{what} {v!r} is not valid: use a number {span}")


@dataclass(frozen=True)
class Sampling:
    """How the sampler runs; the same for every mode."""

    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    # guidance stops once the sampling time (1 noise, 0 data) falls to this; 0 guides every step
    guidance_until: float = DEFAULT_GUIDANCE_UNTIL
    # guidance towards given frames (image, extend, connect, loop with an image)
    cond_guidance: float = 1.0
    # a guidance-distilled model guides in one pass a step; False runs guidance's two passes
    one_pass_guidance: bool = True

    def __post_init__(self):
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise ValueError(f"steps {self.steps!r} is not valid: use a whole number, 1 or more")
        _number(self.guidance, "guidance", 0, MAX_GUIDANCE)
        _number(self.cond_guidance, "cond_guidance", 0, MAX_GUIDANCE)
        _number(self.guidance_until, "guidance-until", 0, 1)


@dataclass(frozen=True)
class Shot:
    prompt: str
    seconds: float = DEFAULT_SECONDS

    @classmethod
    def of(cls, s: Any, i: int) -> Shot:
        """A shot from {'prompt', 'seconds'} (or a Shot), with an error naming shot i + 1."""
        if isinstance(s, Shot):
            return s
        if not isinstance(s, dict) or not isinstance(s.get("prompt"), str) or set(s) - {"prompt", "seconds"}:
            raise ValueError(f"shot {i + 1} must be {{'prompt': str, 'seconds': number}}, got {s!r}")
        if not s["prompt"].strip():
            raise ValueError(f"shot {i + 1} has an empty prompt: every shot says what it shows")
        secs = s.get("seconds", DEFAULT_SECONDS)
        _number(secs, f"shot {i + 1}: seconds", 0, MAX_SECONDS, lo_open=True)
        return cls(s["prompt"], float(secs))


def shots_of(shots: Any, expand: bool = True) -> tuple[Shot, ...]:
    """A shot list as users give it, checked: a non-empty list of {'prompt', 'seconds'}, at most
    60 s each and in all, and (when prompts are expanded) no shot naming as known an object no
    earlier shot introduced."""
    if not shots or not isinstance(shots, (list, tuple)):
        raise ValueError("shots must be a non-empty list of {'prompt': ..., 'seconds': ...}")
    out = tuple(Shot.of(s, i) for i, s in enumerate(shots))
    if sum(s.seconds for s in out) > MAX_SECONDS:
        raise ValueError(f"the shots last more than {MAX_SECONDS:g} seconds in all")
    if expand:
        from nanosora.generation import expand

        expand.shot_references([s.prompt for s in out])
    return out


# the largest LoRA scale a request may ask for (past about 2 an adapter overshoots what it learned)
MAX_LORA_SCALE = 4.0


def clip_frames(seconds: float, fps: int) -> int:
    """Frames a clip of `seconds` shows: seconds x fps of them, each lasting 1/fps (a still,
    0 s, is one frame)."""
    if not 0 <= seconds <= MAX_SECONDS:
        raise ValueError(f"seconds {seconds} is not valid: use 0 (one frame) to {MAX_SECONDS:g}")
    return max(1, int(round(seconds * fps)))


def frames_for(seconds: float, fps: int) -> int:
    """Frames the sampler makes for a clip of `seconds`: the fewest 1 + 4k that hold
    clip_frames (the autoencoder packs the first frame alone and each later four into one
    latent); the frames past clip_frames are dropped."""
    n = clip_frames(seconds, fps)
    return 1 + 4 * -(-(n - 1) // 4)


@dataclass(frozen=True)
class GenerationRequest:
    """One video to make. Media fields (image, video, connect) hold a file path, a PIL image or
    a uint8 array; a request stored as JSON holds paths."""

    mode: str = "text"
    prompt: str = ""
    negative_prompt: str = ""
    width: int | None = None  # None: the given image's or video's size, else 64
    height: int | None = None
    # the clip's length; for extend and connect the time added (None: the mode's default)
    seconds: float | None = None
    frames: int | None = None  # instead of seconds
    fps: int | None = None  # None: the model's
    seed: int = 0
    sampling: Sampling = field(default_factory=Sampling)
    image: Any = None
    image_frame: int = 0
    video: Any = None
    direction: str = "forward"
    strength: float = DEFAULT_STRENGTH
    connect: tuple = ()
    shots: tuple[Shot, ...] = ()
    # What this video follows across a cut (a remix follows its source): `story`, the prompts
    # of the shots before it, so that "the blue square" names the object they introduced; and
    # `after`, a video or image whose last frame shows who is in the world (reference.py)
    story: tuple[str, ...] = ()
    after: Any = None
    # rewrite the prompt into a caption like the model's training captions (its expander)
    expand: bool = True
    # a function that rewrites the prompt before the model's expander (an LLM, say)
    expand_hook: Callable[[str], str] | None = field(default=None, compare=False)
    watermark: bool = True
    # LoRA adapters loaded with the model to use for this video, {name: scale} ({}: none);
    # None: those active as loaded
    lora: dict[str, float] | None = None
    # the layout to follow instead of the planner's (user_layout.py: per object, its words and
    # boxes at key frames); a model whose transformer reads layouts only
    layout: Any = None

    def __post_init__(self):
        if self.layout is not None:
            from nanosora.generation import user_layout

            if self.mode == "shots":
                raise ValueError(
                    "layout does not go with the shots mode: each shot is planned from its prompt"
                )
            object.__setattr__(self, "layout", user_layout.parse(self.layout))
            user_layout.check_length(self.layout, self.length)
        if self.lora is not None:
            if not isinstance(self.lora, dict) or not all(isinstance(k, str) for k in self.lora):
                raise ValueError("lora must map adapter names to scales, e.g. {'style': 0.8}")
            for k, v in self.lora.items():
                _number(v, f"the scale of LoRA adapter {k!r}", 0, MAX_LORA_SCALE)
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r} is not known: use one of {', '.join(MODES)}")
        if not isinstance(self.prompt, str) or not isinstance(self.negative_prompt, str):
            raise ValueError(f"prompt must be a string, got {type(self.prompt).__name__}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed {self.seed!r} is not valid: use a whole number")
        if self.seconds is not None:
            _number(self.seconds, "seconds", 0, MAX_SECONDS)
        fps = self.fps or DEFAULT_FPS
        if self.frames is not None and not (
            isinstance(self.frames, int) and 1 <= self.frames <= MAX_SECONDS * fps + 1
        ):
            raise ValueError(f"frames {self.frames!r} is not valid: use 1 to {int(MAX_SECONDS * fps) + 1}")
        needs = {
            "image": ("image",),
            "extend": ("video",),
            "edit": ("video",),
            "connect": ("connect",),
            "shots": ("shots",),
        }.get(self.mode, ())
        given = {k for k in ("image", "video") if getattr(self, k) is not None}
        given |= {
            k
            for k in ("connect", "shots")
            if not (isinstance(getattr(self, k), tuple) and not getattr(self, k))
        }
        allowed = set(needs) | ({"image"} if self.mode == "loop" else set())
        for k in sorted(set(needs) - given):
            raise ValueError(f"{self.mode} needs {'a ' if k in ('image', 'video') else ''}{k}")
        for k in sorted(given - allowed):
            raise ValueError(f"{k} does not go with the {self.mode} mode")
        if self.mode == "extend" and self.direction not in DIRECTIONS:
            raise ValueError(f"extend {self.direction!r} is not valid: use {' or '.join(DIRECTIONS)}")
        if self.mode == "edit":
            _number(self.strength, "strength", 0, 1, lo_open=True)
        if self.mode == "connect" and len(self.connect) != 2:
            raise ValueError("connect takes two videos (a, b)")
        if self.mode == "shots":
            object.__setattr__(self, "shots", shots_of(self.shots, self.expand))
        if self.story or self.after is not None:
            self._check_after()
        if self.image is not None:
            n = self.frames or clip_frames(self.seconds if self.seconds is not None else DEFAULT_SECONDS, fps)
            if not isinstance(self.image_frame, int) or not 0 <= self.image_frame < n:
                raise ValueError(f"image_frame {self.image_frame!r} is not valid: use 0 to {n - 1}")

    def _check_after(self) -> None:
        if self.mode == "shots":
            raise ValueError("story and after do not go with the shots mode: its shots are the story")
        story = self.story
        if not isinstance(story, (list, tuple)) or not all(isinstance(p, str) and p.strip() for p in story):
            raise ValueError("story must be a list of the earlier shots' prompts, none of them empty")
        object.__setattr__(self, "story", tuple(story))
        if self.expand and self.story:
            from nanosora.generation import expand

            expand.shot_references([*self.story, self.prompt])

    @classmethod
    def from_kwargs(
        cls,
        prompt: str = "",
        *,
        image=None,
        video=None,
        extend: str | None = None,
        strength: float | None = None,
        connect: tuple | None = None,
        loop: bool = False,
        shots: list | None = None,
        steps: int = DEFAULT_STEPS,
        guidance: float = DEFAULT_GUIDANCE,
        guidance_until: float = DEFAULT_GUIDANCE_UNTIL,
        cond_guidance: float = 1.0,
        one_pass_guidance: bool = True,
        **rest,
    ) -> GenerationRequest:
        """The request `Model.generate` keywords describe: the mode follows from which media
        are given (image; video with extend='forward'|'backward' or strength; connect=(a, b);
        loop=True; shots=[...]), the sampling settings are gathered into one Sampling."""
        modes = {
            "shots": shots is not None,
            "connect": connect is not None,
            "extend": extend is not None,
            "edit": strength is not None,
            "image": image is not None,
        }
        chosen = [m for m, on in modes.items() if on]
        if len(chosen) > 1:
            raise ValueError(f"choose one mode, not {' and '.join(chosen)}")
        mode = chosen[0] if chosen else "text"
        if video is not None and mode not in ("extend", "edit"):
            raise ValueError("a video needs a mode: extend='forward' or 'backward', or strength for an edit")
        if loop:
            if mode not in ("text", "image"):
                raise ValueError(f"loop works with text or an image, not with {mode}")
            mode = "loop"
        named = {f.name for f in dataclasses.fields(cls)} - {"mode", "sampling", "direction"}
        unknown = set(rest) - named
        if unknown:
            raise TypeError(f"generate() got unexpected keyword(s): {', '.join(sorted(unknown))}")
        sampling = Sampling(steps, guidance, guidance_until, cond_guidance, one_pass_guidance)
        media = dict(image=image, video=video, connect=tuple(connect) if connect is not None else ())
        if mode == "extend":
            media["direction"] = extend
        if mode == "edit":
            media["strength"] = strength
        if mode == "shots":
            media["shots"] = shots
        return cls(mode=mode, prompt=prompt, sampling=sampling, **media, **rest)

    @property
    def length(self) -> float:
        """Seconds asked for (the clip, or what extend and connect add)."""
        if self.seconds is not None:
            return self.seconds
        return DEFAULT_CONNECT_SECONDS if self.mode == "connect" else DEFAULT_SECONDS

    @property
    def prompts(self) -> list[str]:
        """What the request asks to show: every shot's prompt, or the prompt."""
        return [s.prompt for s in self.shots] if self.mode == "shots" else [self.prompt]

    def to_json(self) -> dict:
        """A JSON-safe dict (what the server's store keeps); media must be file paths."""
        d = {}
        for f in dataclasses.fields(self):
            if f.name == "expand_hook":
                continue
            v = getattr(self, f.name)
            if f.name in ("image", "video", "after") and v is not None and not isinstance(v, str):
                raise ValueError(f"a stored request names its {f.name} by path, not {type(v).__name__}")
            if f.name == "connect":
                if any(not isinstance(p, str) for p in v):
                    raise ValueError("a stored request names its connect videos by path")
                v = list(v)
            elif f.name == "sampling":
                v = dataclasses.asdict(v)
            elif f.name == "shots":
                v = [dataclasses.asdict(s) for s in v]
            elif f.name == "story":
                v = list(v)
            elif f.name == "layout" and v is not None:
                from nanosora.generation import user_layout

                v = user_layout.to_json(v)
            d[f.name] = v
        return d

    @classmethod
    def from_json(cls, d: dict) -> GenerationRequest:
        """The inverse of to_json; a missing key takes its default, an unknown one is an error."""
        known = {f.name for f in dataclasses.fields(cls)} - {"expand_hook"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"unknown request key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
            )
        d = dict(d)
        if "sampling" in d:
            d["sampling"] = Sampling(**d["sampling"])
        if "connect" in d:
            d["connect"] = tuple(d["connect"])
        if "shots" in d:
            d["shots"] = tuple(Shot(**s) for s in d["shots"])
        if "story" in d:
            d["story"] = tuple(d["story"])
        return cls(**d)
