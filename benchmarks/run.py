"""Every headline figure in one run: generation speed against real time and against
diffusers' WanPipeline, the training step against this machine's matmul peak, peak memory
and the cost curves. Prints a table and writes JSON with at least the keys
realtime_factor, vs_diffusers_speedup, train_flops_fraction and peak_rss_mb.

    python benchmarks/run.py [--model DIR] [--json OUT] [--plot PNG] [--quick]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import dit_speed
import generate_speed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--plot", default=None, help="cost curves (PNG)")
    ap.add_argument("--quick", action="store_true", help="fewer durations and sizes in the curves")
    args = ap.parse_args()

    gen = generate_speed.measure(args.model, args.quick, args.plot)
    print(generate_speed.report(gen))
    train = dit_speed.measure("default", 32)
    print(dit_speed.report(train))
    result = {
        "realtime_factor": gen["realtime_factor"],
        "vs_diffusers_speedup": gen["vs_diffusers_speedup"],
        "train_flops_fraction": train["train_flops_fraction"],
        "peak_rss_mb": gen["peak_rss_mb"],
        "generation": gen,
        "transformer": train,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
