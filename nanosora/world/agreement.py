"""Does the scorer agree with ground truth? Random rendered scenes must pass their own
prompt and fail the same prompt with one colour, shape or direction changed.

Used by the test suite (a small run) and benchmarks/scorer_agreement.py (the full run).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from nanosora.world import spec
from nanosora.world.caption import short_prompt
from nanosora.world.render import render
from nanosora.world.sample import sample_scene
from nanosora.world.scene import Scene
from nanosora.world.score import score

FRAME_SIZES = [(64, 64), (128, 64), (64, 128), (32, 32), (96, 48), (48, 96), (128, 128)]
_OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}


@dataclass
class Agreement:
    trials: dict[str, int] = field(default_factory=dict)
    agreed: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, kind: str, ok: bool, note: str) -> None:
        self.trials[kind] = self.trials.get(kind, 0) + 1
        self.agreed[kind] = self.agreed.get(kind, 0) + int(ok)
        if not ok:
            self.failures.append(f"{kind}: {note}")

    def rate(self, kind: str) -> float:
        return self.agreed.get(kind, 0) / max(1, self.trials.get(kind, 0))


def _changed(scene: Scene, rng: np.random.Generator, what: str) -> Scene | None:
    """A copy of the scene whose first shot has one object changed, or None if the change
    does not apply (for example a direction change on a scene where nothing moves linearly)."""
    s = copy.deepcopy(scene)
    objs = s.shots[0].objects
    o = objs[int(rng.integers(len(objs)))]
    if what == "colour":
        used = {x.colour for sh in s.shots for x in sh.objects}
        new = str(rng.choice([c for c in spec.COLOURS if c not in used]))
        for sh in s.shots:  # the colour names the object in every shot
            for x in sh.objects:
                if x.colour == o.colour:
                    x.colour = new
    elif what == "shape":
        new = str(rng.choice([sh for sh in spec.SHAPES if sh != o.shape]))
        for sh in s.shots:
            for x in sh.objects:
                if x.colour == o.colour:
                    x.shape = new
        if any(x.motion == "spins" and x.shape == "circle" for sh in s.shots for x in sh.objects):
            return None  # a spinning shape's fill ratio is not checked
    else:
        movers = [x for x in objs if x.motion.startswith("moves")]
        if not movers:
            return None
        m = movers[int(rng.integers(len(movers)))]
        m.motion = "moves " + _OPPOSITE[m.motion.split()[1]]
    return s


def run(n: int, seed: int = 0, seconds: float = 2.0, fps: int = 8) -> Agreement:
    rng = np.random.default_rng(seed)
    out = Agreement()
    for i in range(n):
        w, h = FRAME_SIZES[i % len(FRAME_SIZES)]
        scene = sample_scene(rng, aspect=w / h, seconds=seconds)
        frames = render(scene, w, h, fps, seconds)
        prompt = short_prompt(scene, rng, p=0.3)
        out.add("true prompt passes", score(frames, fps, prompt).passed, f"{w}x{h} {prompt!r}")
        for what in ("colour", "shape", "direction"):
            changed = _changed(scene, rng, what)
            if changed is None:
                continue
            wrong = short_prompt(changed)
            out.add(f"changed {what} fails", not score(frames, fps, wrong).passed, f"{w}x{h} {wrong!r}")
    return out
