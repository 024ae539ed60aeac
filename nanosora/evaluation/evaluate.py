"""The world benchmark: generate from fixed prompt suites and judge every clip with the
Flatland scorer (pixels only, no model in the loop).

Prompts are short prompts a person would type, built from templates with a fixed seed, so
every run scores the same suites; training only ever saw detailed captions of random
scenes, and never the held-out colour-shape-motion combinations (world/heldout.py).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanosora.atomic import atomic_path
from nanosora.config import DEFAULT_GUIDANCE, DEFAULT_GUIDANCE_UNTIL, DEFAULT_STEPS
from nanosora.world import spec
from nanosora.world.heldout import HELD_OUT
from nanosora.world.language import (
    COLOUR_WORDS,
    SHAPE_WORDS,
    SIZE_WORDS,
    join_shots,
    motion_phrase,
    paraphrase,
)

SUITE_SEED = 20261122
# The validation split: the same suites drawn with another seed, and sampled at other seeds,
# for choosing designs, settings and checkpoints; the benchmark's own prompts judge only
# what was chosen (`nanosora eval --validation`).
VALIDATION_SEED = 20261201
VALIDATION_SEEDS_FROM = 500_000
SIMPLE_MOTIONS = spec.MOTIONS  # one motion per object, no trail

LONG_MOTIONS = ("stays still", "spins", "bounces", "falls")


@dataclass
class Case:
    suite: str
    prompt: str
    width: int = 64
    height: int = 64
    seconds: float = 2.0  # of each shot, where there are shots
    seed: int = 0
    # a shot list, generated as shots (one story) and scored as the prompt "A, then cut to B"
    shots: tuple[str, ...] = ()


def _combo(rng, allow_held_out: bool = False) -> tuple[str, str, str]:
    while True:
        c = (
            str(rng.choice(list(spec.COLOURS))),
            str(rng.choice(spec.SHAPES)),
            str(rng.choice(SIMPLE_MOTIONS)),
        )
        if allow_held_out or c not in HELD_OUT:
            return c


def _obj(colour, shape, motion, size=None) -> str:
    first = size or colour
    return " ".join(["an" if first[0] in "aeiou" else "a", *([size] if size else []), colour, shape, motion])


def _two(rng) -> str:
    a = _combo(rng)
    while True:
        b = _combo(rng)
        if b[0] != a[0]:
            return f"{_obj(*a)} and {_obj(*b)}"


def _three(rng) -> str:
    objs = [_combo(rng)]
    while len(objs) < 3:
        c = _combo(rng)
        if c[0] not in {o[0] for o in objs}:
            objs.append(c)
    return " and ".join(_obj(*o) for o in objs)


def _story(rng, n_shots: int) -> tuple[str, ...]:
    """A story of n shots: one object introduced with its size, then named as known ("the ...")
    doing something else in every later shot; no held-out combination in any shot."""
    motions = [m for m in SIMPLE_MOTIONS if m not in ("grows", "shrinks")]  # size stays its class
    while True:
        c, s, m = _combo(rng)
        later = [str(x) for x in rng.choice([x for x in motions if x != m], size=n_shots - 1, replace=False)]
        if m in motions and all((c, s, x) not in HELD_OUT for x in later):
            size = str(rng.choice(list(spec.SIZES)))
            return (_obj(c, s, m, size=size), *(f"the {c} {s} {x}" for x in later))


def _physics(rng, i: int) -> str:
    """A fall accelerates, a bounce reflects, an object passing behind another comes out the
    other side (object permanence), a trail stays."""
    colours = [str(c) for c in rng.permutation(list(spec.COLOURS))[:2]]
    shapes = [str(rng.choice(spec.SHAPES)) for _ in range(2)]
    kind = i % 4
    if kind == 0:
        return _obj(colours[0], shapes[0], "falls")
    if kind == 1:
        return _obj(colours[0], shapes[0], "bounces")
    if kind == 2:
        return f"a small {colours[0]} {shapes[0]} passes behind a big {colours[1]} {shapes[1]}"
    return _obj(
        colours[0],
        shapes[0],
        str(rng.choice(["moves right", "moves left", "moves down"])) + " and leaves a trail",
    )


# every suite, in the order suites() makes them (a test holds the two together)
SUITE_NAMES = (
    "single", "two_objects", "held_out", "paraphrases", "wide_tall", "backgrounds", "physics",
    "long_10s", "long_60s", "three_objects", "shots",
)  # fmt: skip


def suites(n: int = 16, validation: bool = False) -> dict[str, list[Case]]:
    """Every suite with n prompts (fewer where the suite is smaller by nature); `validation`:
    the validation split instead of the benchmark's prompts."""
    rng = np.random.default_rng(VALIDATION_SEED if validation else SUITE_SEED)
    out: dict[str, list[Case]] = {}
    out["single"] = [
        Case("single", _obj(*_combo(rng), size=str(rng.choice(list(spec.SIZES)))), seed=i) for i in range(n)
    ]
    out["two_objects"] = [Case("two_objects", _two(rng), seed=i) for i in range(n)]
    held = sorted(HELD_OUT)
    out["held_out"] = [Case("held_out", _obj(*held[i % len(held)]), seed=i) for i in range(max(n, len(held)))]
    para = []
    for i in range(n):
        c, s, m = _combo(rng)
        words = ["a", paraphrase(c, COLOUR_WORDS, rng, 1.0), paraphrase(s, SHAPE_WORDS, rng, 1.0)]
        if rng.random() < 0.5:
            words.insert(1, paraphrase(str(rng.choice(list(spec.SIZES))), SIZE_WORDS, rng, 1.0))
        para.append(Case("paraphrases", " ".join(words) + " " + motion_phrase(m, rng, 1.0), seed=i))
    out["paraphrases"] = para
    out["wide_tall"] = [
        Case(
            "wide_tall",
            _obj(*_combo(rng)),
            width=128 if i % 2 == 0 else 64,
            height=64 if i % 2 == 0 else 128,
            seed=i,
        )
        for i in range(n)
    ]
    bgs = list(spec.BACKGROUNDS)
    out["backgrounds"] = [
        Case("backgrounds", f"{_obj(*_combo(rng))} on a {bgs[i % len(bgs)]} background", seed=i)
        for i in range(n)
    ]
    out["physics"] = [
        Case(
            "physics",
            _physics(rng, i),
            seconds=3.0 if i % 4 == 0 else 2.0,
            seed=i,
        )
        for i in range(max(4, n // 2))
    ]
    # Long clips, made window by window: the object must stay present, with the same colour,
    # shape and size, for the whole clip (motions that keep it in the frame).
    for name, secs, k in (("long_10s", 10.0, max(4, n // 2)), ("long_60s", 60.0, max(4, n // 4))):
        out[name] = [
            Case(
                name,
                _obj(str(rng.choice(list(spec.COLOURS))), str(rng.choice(spec.SHAPES)), LONG_MOTIONS[i % 4]),
                seconds=secs,
                seed=i,
            )
            for i in range(k)
        ]
    # drawn after the older suites, so that their prompts stay as they were
    out["three_objects"] = [Case("three_objects", _three(rng), seed=i) for i in range(n)]
    out["shots"] = []
    for i in range(n):
        story = _story(rng, 2 + i % 2)
        out["shots"].append(Case("shots", join_shots(story), seed=i, shots=story))
    if validation:
        out = {
            name: [dataclasses.replace(c, seed=c.seed + VALIDATION_SEEDS_FROM) for c in cases]
            for name, cases in out.items()
        }
    return {name: [c for c in map(_renderable, cases) if c is not None] for name, cases in out.items()}


def _renderable(c: Case, tries: int = 20) -> Case | None:
    """The case with a seed at which the world can lay the prompt out (prompt expansion uses
    the same seed), or None: some prompts cannot be staged in some frames (a medium square
    that grows in a small frame leaves it), and the suites only ask for what the world can do."""
    from nanosora.world.parse import PromptError, scene_from_prompt

    for k in range(tries):
        seed = c.seed + 1000 * k
        try:
            scene_from_prompt(
                c.prompt, np.random.default_rng(seed), aspect=c.width / c.height, seconds=c.seconds
            )
        except (PromptError, ValueError):
            continue
        return dataclasses.replace(c, seed=seed)
    return None


class WorldReference:
    """The renderer as a "model": the ground-truth clip of each prompt. Scoring it gives the
    ceiling a suite allows (the scorer has its own misses, under occlusion for example).
    With `vae`, each clip goes through that autoencoder (encode, decode) first: the ceiling
    a model on its latents can reach, whatever its transformer learns."""

    fps = 8

    def __init__(self, vae=None):
        self.vae = vae

    def generate(self, prompt=None, *, width, height, seed, frames=None, shots=None, **_):
        from nanosora.video import Video
        from nanosora.world.caption import detailed_caption
        from nanosora.world.parse import scene_from_prompt
        from nanosora.world.render import render

        if shots:  # the story as one multi-shot prompt, the length generate would give it
            prompt = join_shots(s["prompt"] for s in shots)
            frames = 1 + sum(round(s["seconds"] * self.fps) for s in shots)
        secs = (frames - 1) / self.fps
        scene = scene_from_prompt(prompt, np.random.default_rng(seed), aspect=width / height, seconds=secs)
        clip = render(scene, width, height, self.fps, secs)
        if self.vae is not None:
            import torch

            from nanosora.networks.vae import frames_to_tensor, tensor_to_frames

            with torch.inference_mode():
                clip = tensor_to_frames(self.vae.decode(self.vae.encode(frames_to_tensor(clip)))[0])
        return Video(clip, self.fps, {"caption": detailed_caption(scene, secs)})


def run(
    model,
    suite_names: list[str] | None = None,
    n: int = 16,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    out_dir: str | Path | None = None,
    progress: bool = True,
    guidance_until: float = DEFAULT_GUIDANCE_UNTIL,
    one_pass_guidance: bool = True,
    validation: bool = False,
) -> dict:
    """Generate and score; returns {suite: {"passed", "total", "rate", "integrity", "cases":
    [...]}}, where integrity is the share of clips whose every object passes the strict
    integrity check. `one_pass_guidance=False`: a guidance-distilled model guides in two
    passes instead. `validation`: the validation split (suites)."""
    from tqdm import tqdm

    from nanosora import video
    from nanosora.world.score import score

    all_suites = suites(n, validation)
    names = suite_names or list(all_suites)
    unknown = set(names) - set(all_suites)
    if unknown:
        raise ValueError(f"unknown suite(s) {sorted(unknown)}; choose from {', '.join(all_suites)}")
    cases = [c for name in names for c in all_suites[name]]
    results: dict = {name: {"passed": 0, "total": 0, "cases": []} for name in names}
    sheets: dict[str, list] = {name: [] for name in names}
    for c in tqdm(cases, desc="world benchmark", unit="clip", disable=not progress):
        frames = int(round(c.seconds * model.fps)) + 1
        frames = 1 + 4 * round((frames - 1) / 4)
        what = {"frames": frames, "prompt": c.prompt}
        if c.shots:
            what = {"shots": [{"prompt": p, "seconds": c.seconds} for p in c.shots]}
        v = model.generate(
            **what,
            width=c.width,
            height=c.height,
            steps=steps,
            guidance=guidance,
            guidance_until=guidance_until,
            seed=c.seed,
            one_pass_guidance=one_pass_guidance,
        )
        verdict = score(v.frames, v.fps, c.prompt)
        r = results[c.suite]
        r["total"] += 1
        r["passed"] += int(verdict.passed)
        checks = verdict.checks()  # partial credit: the share of the scorer's checks that pass
        r["checks_passed"] = r.get("checks_passed", 0) + sum(c.passed for c in checks)
        r["checks"] = r.get("checks", 0) + len(checks)
        whole = all(ch.passed for o in verdict.objects for ch in o.checks if ch.check == "integrity")
        r["whole"] = r.get("whole", 0) + int(whole)
        r["cases"].append(
            {
                "prompt": c.prompt,
                "size": f"{c.width}x{c.height}",
                "seed": c.seed,
                "passed": verdict.passed,
                # which of the scorer's checks failed, so a low pass rate can be read
                "failed": [f"{ch.check}: {ch.detail}" for ch in checks if not ch.passed],
                "caption": v.metadata["caption"],
            }
        )
        if len(sheets[c.suite]) < 8 and (c.width, c.height) == (64, 64):
            sheets[c.suite].append(v.frames[:: max(1, len(v.frames) // 8)][:8])
    for r in results.values():
        r["rate"] = round(r["passed"] / max(1, r["total"]), 3)
        r["check_rate"] = round(r.get("checks_passed", 0) / max(1, r.get("checks", 0)), 3)
        r["integrity"] = round(r.get("whole", 0) / max(1, r["total"]), 3)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_dir / "world_benchmark.json") as tmp:
            tmp.write_text(json.dumps(results, indent=2))
        rows = [np.concatenate(list(s)) for s in sheets.values() if s]
        if rows:
            video.write(out_dir / "samples.png", np.concatenate(rows), 8.0)
    return results


def table(results: dict) -> str:
    lines = [f"{'suite':<14} {'passed':>7} {'total':>6} {'rate':>7} {'checks':>7} {'whole':>7}"]
    for name, r in results.items():
        lines.append(
            f"{name:<14} {r['passed']:>7} {r['total']:>6} {r['rate']:>7.1%} {r['check_rate']:>7.1%}"
            f" {r['integrity']:>7.1%}"
        )
    return "\n".join(lines)
