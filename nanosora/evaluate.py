"""The world benchmark: generate from fixed prompt suites and judge every clip with the
Flatland scorer (pixels only, no model in the loop).

Prompts are short prompts a person would type, built from templates with a fixed seed, so
every run scores the same suites; training only ever saw detailed captions of random
scenes, and never the held-out colour-shape-motion combinations (world/heldout.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanosora.world import spec
from nanosora.world.heldout import HELD_OUT
from nanosora.world.language import COLOUR_WORDS, SHAPE_WORDS, SIZE_WORDS, motion_phrase, paraphrase

SUITE_SEED = 20261122
SIMPLE_MOTIONS = (
    "stays still",
    "moves left",
    "moves right",
    "moves up",
    "moves down",
    "bounces",
    "falls",
    "spins",
    "grows",
    "shrinks",
)


@dataclass
class Case:
    suite: str
    prompt: str
    width: int = 64
    height: int = 64
    seconds: float = 2.0
    seed: int = 0


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


def suites(n: int = 16) -> dict[str, list[Case]]:
    """Every suite with n prompts (fewer where the suite is smaller by nature)."""
    rng = np.random.default_rng(SUITE_SEED)
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
            _obj(
                str(rng.choice(list(spec.COLOURS))),
                str(rng.choice(spec.SHAPES)),
                "bounces" if i % 2 else "falls",
            ),
            seconds=3.0 if i % 2 == 0 else 2.0,
            seed=i,
        )
        for i in range(max(4, n // 2))
    ]
    return out


def run(
    model,
    suite_names: list[str] | None = None,
    n: int = 16,
    steps: int = 20,
    guidance: float = 4.0,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Generate and score; returns {suite: {"passed", "total", "rate", "cases": [...]}}."""
    from tqdm import tqdm

    from nanosora import video
    from nanosora.world.score import score

    all_suites = suites(n)
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
        v = model.generate(
            c.prompt,
            width=c.width,
            height=c.height,
            frames=frames,
            steps=steps,
            guidance=guidance,
            seed=c.seed,
        )
        verdict = score(v.frames, v.fps, c.prompt)
        r = results[c.suite]
        r["total"] += 1
        r["passed"] += int(verdict.passed)
        r["cases"].append(
            {
                "prompt": c.prompt,
                "size": f"{c.width}x{c.height}",
                "seed": c.seed,
                "passed": verdict.passed,
                "caption": v.metadata["caption"],
            }
        )
        if len(sheets[c.suite]) < 8 and (c.width, c.height) == (64, 64):
            sheets[c.suite].append(v.frames[:: max(1, len(v.frames) // 8)][:8])
    for r in results.values():
        r["rate"] = round(r["passed"] / max(1, r["total"]), 3)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        with video.atomic_path(out_dir / "world_benchmark.json") as tmp:
            tmp.write_text(json.dumps(results, indent=2))
        rows = [np.concatenate(list(s)) for s in sheets.values() if s]
        if rows:
            video.write(out_dir / "samples.png", np.concatenate(rows), 8.0)
    return results


def table(results: dict) -> str:
    lines = [f"{'suite':<14} {'passed':>7} {'total':>6} {'rate':>7}"]
    for name, r in results.items():
        lines.append(f"{name:<14} {r['passed']:>7} {r['total']:>6} {r['rate']:>7.1%}")
    return "\n".join(lines)
