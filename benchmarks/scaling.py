"""The scaling study: world-benchmark score against training compute, the analogue of the
Sora report's "quality improves with compute". Each point is the same run's transformer
(EMA weights) at a checkpoint; compute is the transformer's training FLOPs up to that step
(planner count, the autoencoder's fixed cost apart) and the CPU-minutes it took here.

    python benchmarks/scaling.py RUN_DIR CKPT [CKPT ...] [--n 16] [--json OUT] [--plot PNG]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

SUITES = ["single", "two_objects", "held_out", "paraphrases"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="the transformer's run folder (config.json, vae.safetensors, log.jsonl)")
    ap.add_argument("checkpoints", nargs="+", help="training checkpoints (ckpt-*.pt) of that run")
    ap.add_argument("--n", type=int, default=16, help="prompts per suite")
    ap.add_argument("--json")
    ap.add_argument("--plot")
    args = ap.parse_args()

    from nanosora import modeldir, plan
    from nanosora.evaluation import evaluate
    from nanosora.model import load
    from nanosora.training import train

    run = Path(args.run)
    cfg = load(run).dit.cfg
    step_flops = plan.training_flops(cfg, tokens=80, batch=32, steps=1)
    rows = train.TrainLog(run, 10**9).rows()
    rate = {r["step"]: r["samples_per_s"] for r in rows}
    points = []
    for ck in sorted(args.checkpoints):
        with tempfile.TemporaryDirectory() as tmp:
            m = modeldir.export(run, Path(tmp) / "m", checkpoint=ck)
            model = load(m)
            step = modeldir.read_config(m).trained_steps
            res = evaluate.run(model, SUITES, n=args.n, progress=False)
        near = min(rate, key=lambda s: abs(s - step))
        minutes = step * 32 / rate[near] / 60  # samples over the run's mean throughput to that step
        scores = {k: v["rate"] for k, v in res.items()}
        checks = {k: v["check_rate"] for k, v in res.items()}
        mean = sum(scores.values()) / len(scores)
        points.append(
            {
                "step": step,
                "train_pflop": round(step * step_flops / 1e15, 2),
                "cpu_minutes": round(minutes, 1),
                "suites": scores,
                "checks": checks,
                "mean_checks": round(sum(checks.values()) / len(checks), 3),
                "mean": round(mean, 3),
            }
        )
        print(
            f"step {step:>5}: {points[-1]['train_pflop']:7.2f} PFLOP, {minutes:6.1f} min, "
            f"mean pass {mean:.1%}, checks {points[-1]['mean_checks']:.1%} "
            + " ".join(f"{k} {v:.0%}" for k, v in scores.items())
        )
    points.sort(key=lambda p: p["step"])
    if args.json:
        Path(args.json).write_text(json.dumps(points, indent=2))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        x = [p["train_pflop"] for p in points]
        for s in SUITES:
            ax.plot(x, [p["checks"][s] for p in points], "o-", label=f"{s}: checks passed", alpha=0.7)
        ax.plot(x, [p["mean_checks"] for p in points], "k-", lw=2.5, label="mean share of checks passed")
        ax.plot(x, [p["mean"] for p in points], "k--", lw=1.5, label="mean share of clips passed")
        ax.set(
            xlabel="transformer training compute (PFLOP)",
            ylabel="share passed (world benchmark)",
            title="quality against training compute",
            ylim=(0, 1),
        )
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)


if __name__ == "__main__":
    main()
