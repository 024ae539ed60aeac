"""int8 back ends side by side: torch.ao's dynamic quantization against torchao's.

The shipped model generates the default 2 s clip (64x64, default settings) in float32 and
with the transformer's linear layers in int8 by each back end (nanosora.networks.quant). The runs are
interleaved, round by round, so that a slow moment of the machine falls on every variant
alike. Reported: the median seconds, their ratios to float32, and how far each int8 clip is
from the float32 one of the same seed (mean absolute pixel difference, 0-255).

    python benchmarks/int8.py [--rounds N] [--json OUT]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import emit

from nanosora.model import load

PROMPTS = ["a red circle moves right", "a big blue square stays still", "a green triangle falls"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    models = {"float32": load(), "torch.ao int8": load(int8="torch.ao"), "torchao int8": load(int8="torchao")}
    times = {k: [] for k in models}
    for r in range(args.rounds + 1):
        for k, m in models.items():
            t = time.perf_counter()
            m.generate(PROMPTS[0], seed=r, watermark=False)
            if r:  # the first round warms up
                times[k].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) for k, v in times.items()}
    diff = {}
    for k, m in models.items():
        if k == "float32":
            continue
        d = [
            np.abs(
                m.generate(p, seed=s, watermark=False).frames.astype(float)
                - models["float32"].generate(p, seed=s, watermark=False).frames
            ).mean()
            for p in PROMPTS
            for s in (0, 1)
        ]
        diff[k] = round(float(np.mean(d)), 3)
    out = {
        "clip": "2 s, 64x64, default settings, shipped model",
        "rounds": args.rounds,
        "median_s": {k: round(v, 4) for k, v in med.items()},
        "ratio_to_float32": {k: round(v / med["float32"], 3) for k, v in med.items()},
        "mean_abs_pixel_diff_to_float32": diff,
    }
    emit(out, args.json)


if __name__ == "__main__":
    main()
