"""Long clips: generation time and peak memory against duration, two models side by side.

A model trained with reference frames (reference.py) shows every window after the first one
more latent frame, the clip's first frame, so its windows cost more than a plain model's.
This measures what that costs: each model generates the default prompt at 2, 10, 30 and 60 s
(64x64, default settings) in a fresh process per clip (its own peak RSS, load included),
the two models in turns, each clip `--repeats` times (median time). Time should stay linear
in duration and peak memory flat.

    python benchmarks/long_cost.py --model A=DIR --model B=DIR [--json OUT]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from common import emit, in_child

DURATIONS = (2, 10, 30, 60)
CHILD = str(Path(__file__).resolve().parent / "generate_speed.py")  # its --child generates once


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="NAME=DIR (repeat: two models)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each clip (default 3)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    models = dict(m.split("=", 1) for m in args.model)
    runs: dict = {name: {s: [] for s in DURATIONS} for name in models}
    for _ in range(args.repeats):
        for s in DURATIONS:
            for name, path in models.items():  # in turns: the machine's drift hits both alike
                runs[name][s].append(in_child(CHILD, path, str(s), "64", "64"))
    out = {}
    for name, by_s in runs.items():
        rows = {}
        for s, rs in by_s.items():
            gen = statistics.median(r["gen_s"] for r in rs)
            rows[f"{s}s"] = {
                "gen_s": round(gen, 3),
                "s_per_clip_second": round(gen / s, 4),
                "peak_rss_mb": round(max(r["rss_mb"] for r in rs), 1),
            }
        out[name] = rows
    names = list(models)
    if len(names) == 2:
        a, b = names
        out["ratio"] = {k: round(out[b][k]["gen_s"] / out[a][k]["gen_s"], 3) for k in out[a]}
    emit(out, args.json)


if __name__ == "__main__":
    main()
