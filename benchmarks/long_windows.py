"""Long clips read window by window: do they fail by drifting, or by what each window draws?

A long clip passes only when every moment of it does, so its pass rate is bounded by how
often a single window comes out whole. This generates the validation split's long_10s and
long_60s clips with a model, cuts each into its 2 s segments (17 frames, the generation
window), and scores every segment against the clip's prompt with the motion check left out
(a segment of a fall starts mid-fall). It reports:

- the share of segments with a defect (colour, shape, size, persistence or integrity fails),
  the first segment apart from the later ones (later windows failing more often is drift);
- the clips whose object changes its shape class or size class between the first segment and
  a later one (identity lost in the hand-over between windows);
- the clip pass rate that independent segments with that defect rate would give,
  (1 - d) ** segments, beside the measured one.

    python benchmarks/long_windows.py --model A=DIR [--model B=DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import re

from common import emit

SEGMENT = 17  # frames: one generation window at the model's fps
IDENTITY = ("colour", "shape", "size", "persistence", "integrity")


def _classes(checks) -> tuple[str | None, str | None]:
    """The shape and size classes the scorer read (from its check details)."""
    shape = size = None
    for c in checks:
        if c.check == "shape":
            m = re.search(r"fill ratio [0-9.]+: (\w+)", c.detail)
            shape = m.group(1) if m else None
        elif c.check == "size":
            m = re.search(r"of the frame: (\w+)", c.detail)
            size = m.group(1) if m else None
    return shape, size


def measure(model_dir: str) -> dict:
    from nanosora.evaluation import evaluate
    from nanosora.model import load
    from nanosora.world.score import score

    model = load(model_dir)
    cases = [c for s in ("long_10s", "long_60s") for c in evaluate.suites(16, validation=True)[s]]
    rows = {"first": [0, 0], "later": [0, 0]}
    drifted, passed, per_clip = 0, 0, []
    for c in cases:
        frames = 1 + 4 * round(round(c.seconds * model.fps) / 4)
        v = model.generate(c.prompt, frames=frames, width=c.width, height=c.height, seed=c.seed)
        passed += int(score(v.frames, v.fps, c.prompt).passed)
        seen = []
        for k, s in enumerate(range(0, len(v.frames) - SEGMENT + 1, SEGMENT - 1)):
            verdict = score(v.frames[s : s + SEGMENT], v.fps, c.prompt)
            checks = [ch for o in verdict.objects for ch in o.checks if ch.check in IDENTITY]
            bad = not all(ch.passed for ch in checks)
            row = rows["first" if k == 0 else "later"]
            row[0] += int(bad)
            row[1] += 1
            seen.append(_classes(checks))
        changed = any(x != seen[0] for x in seen[1:])
        drifted += int(changed)
        per_clip.append({"prompt": c.prompt, "seconds": c.seconds, "segments": len(seen), "changed": changed})
    d = (rows["first"][0] + rows["later"][0]) / max(1, rows["first"][1] + rows["later"][1])
    predicted = sum((1 - d) ** p["segments"] for p in per_clip) / max(1, len(per_clip))
    return {
        "clips": len(cases),
        "clips_passed": passed,
        "segment_defect_rate_first": round(rows["first"][0] / max(1, rows["first"][1]), 3),
        "segment_defect_rate_later": round(rows["later"][0] / max(1, rows["later"][1]), 3),
        "segments": rows["first"][1] + rows["later"][1],
        "clips_whose_shape_or_size_class_changed": drifted,
        "pass_rate_if_segments_independent": round(predicted, 3),
        "pass_rate_measured": round(passed / max(1, len(cases)), 3),
        "per_clip": per_clip,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="NAME=DIR (repeatable)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    emit({name: measure(path) for name, path in (m.split("=", 1) for m in args.model)}, args.json)


if __name__ == "__main__":
    main()
