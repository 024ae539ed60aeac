"""Flatland renderer throughput: clips per second (17 frames, 64x64) on one core.

Run: python benchmarks/render_speed.py [--json OUT]. Prints a table and writes JSON.
Rendering and scene sampling are timed side by side, in the same run, and compared with
the rate transformer training consumes clips (so "never makes training wait" is a ratio).
"""

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the issue asks

import numpy as np  # noqa: E402

from nanosora.world.render import render  # noqa: E402
from nanosora.world.sample import sample_scene  # noqa: E402


def rate(fn, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", default=None)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    scenes = [sample_scene(rng) for _ in range(200)]
    it = iter(range(10**9))
    results = {
        "render_clips_per_s": rate(lambda: render(scenes[next(it) % 200], 64, 64, 8, 2.0), args.seconds),
        "sample_scenes_per_s": rate(lambda: sample_scene(rng), args.seconds),
        "sample_and_render_clips_per_s": rate(
            lambda: render(sample_scene(rng), 64, 64, 8, 2.0), args.seconds
        ),
        "render_128_clips_per_s": rate(
            lambda: render(scenes[next(it) % 200], 128, 128, 8, 2.0), args.seconds
        ),
    }
    results["target_clips_per_s"] = 200
    results["ratio_to_target"] = results["sample_and_render_clips_per_s"] / 200
    print(f"{'measure':32s} {'value':>10s}")
    for k, v in results.items():
        print(f"{k:32s} {v:10.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
