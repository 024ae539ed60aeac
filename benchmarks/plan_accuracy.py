"""How well `nanosora plan` predicts generation time here: calibrate on the default clip,
then predict and measure other jobs (longer, larger, wider). Target: within +-25%.

    python benchmarks/plan_accuracy.py [--model DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from common import timed

JOBS = [  # (seconds, width, height)
    (2, 64, 64),
    (10, 64, 64),
    (30, 64, 64),
    (2, 128, 64),
    (2, 128, 128),
    (4, 128, 128),
    (2, 256, 256),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--json")
    ap.add_argument("--bf16", action="store_true", help="the bf16 path (generate --bf16), calibrated in bf16")
    args = ap.parse_args()

    from nanosora import plan
    from nanosora.model import load

    model = load(args.model, bf16=args.bf16)
    cpu = plan.calibrate_cpu(model, bf16=args.bf16)
    base = plan.model_job(model)
    rows = []
    for secs, w, h in JOBS:
        job = dataclasses.replace(base, seconds=secs, width=w, height=h)
        f = plan.generation_flops(job)
        predicted = plan.estimate(f["total"], cpu, f["calls"])["seconds"]
        measured = timed(
            lambda s=secs, w=w, h=h: model.generate("a red circle moves right", seconds=s, width=w, height=h),
            repeats=2,
            warmup=1,
        )
        rows.append(
            {
                "job": f"{secs}s {w}x{h}",
                "predicted_s": round(predicted, 3),
                "measured_s": round(measured, 3),
                "error": round(predicted / measured - 1, 3),
            }
        )
        print(
            f"{rows[-1]['job']:>14}: predicted {predicted:7.2f} s, measured {measured:7.2f} s, "
            f"error {rows[-1]['error']:+.0%}"
        )
    worst = max(abs(r["error"]) for r in rows)
    print(
        f"calibration (2 s at 64x64 and 128x128): peak {cpu.peak_flops / 1e9:.1f} GFLOP/s, efficiency "
        f"{cpu.efficiency:.1%}, {cpu.call_overhead_s * 1000:.1f} ms per transformer call; "
        f"worst error {worst:.0%} (target <= 25%)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "device": cpu.name,
                    "peak_gflops": cpu.peak_flops / 1e9,
                    "efficiency": cpu.efficiency,
                    "call_overhead_s": cpu.call_overhead_s,
                    "jobs": rows,
                    "worst_error": worst,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
