"""World model v2, time: which training levers keep identity across windows and cuts.

Every arm fine-tunes the shipped transformer on the same latent cache (the shipped
autoencoder's, with each clip's reference frame: reference.py) by the recipe's time stage
(train_time below: batch 32, lr 2e-4, bf16 autocast, compiled) for as many steps as fit in
`--minutes` of its own measured step time. The arms differ only in the objective:

- control: the shipped objective (random frame masks), so that what the others gain is not
  just more training;
- noise: given frames' latents noised to a random time in [0, 0.25] (Diffusion Forcing's
  noisy context, arXiv 2407.01392);
- refs: half the batches show each clip a reference frame of its own scene after a cut; the
  model then gives every shot the last frame of the shot before, and every later window of a
  long clip its first frame (StreamingT2V's anchor, arXiv 2403.14773);
- refs+noise: both.

Each is judged on the validation split only (other prompts and seeds than the benchmark's):
the long_10s, long_60s and shots suites, and single, two and three objects to see that the
short clips do not pay for it. `--noise-reuse` judges FreeNoise's noise reuse (arXiv
2310.15169; sampling only: every window starts from the first window's noise, its latent
frames shuffled) on a model directory instead.

    python benchmarks/ablate_time.py --cache runs/cache_ref --out runs/time \\
        --minutes 10 --json benchmarks/reported/v2_time_levers.json control noise refs refs+noise
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import recorder

TIME_SUITES = ["long_10s", "long_60s", "shots"]
SHORT_SUITES = ["single", "two_objects", "three_objects"]
ARMS = {
    "control": {"time_ref_p": 0.0, "time_context_noise": 0.0},
    "noise": {"time_ref_p": 0.0, "time_context_noise": 0.25},
    "refs": {"time_ref_p": 0.5, "time_context_noise": 0.0},
    "refs+noise": {"time_ref_p": 0.5, "time_context_noise": 0.25},
}


def objective(arm: str):
    """The arm's objective: the shipped one with reference frames and context noise."""
    from nanosora.training.train_dit import DiTTrainConfig

    a = ARMS[arm]
    return DiTTrainConfig(cpu_bf16=True, ref_p=a["time_ref_p"], context_noise=a["time_context_noise"])


def train_arm(arm: str, source, steps: int, out: Path) -> Path:
    """The shipped model's transformer fine-tuned for `steps` on `source` (a cache with
    reference frames) with the arm's objective; the run folder becomes a model directory."""
    from nanosora.model import default_model_path
    from nanosora.training import train
    from nanosora.training.train_dit import finetune_start, train_dit

    model, run = default_model_path(), out / f"run_{arm}"
    base = finetune_start(model, run, True)
    tcfg = train.stage_schedule(steps, 32, 2e-4, 50, 1)  # other batches than the transformer stage's
    train_dit(
        run, base.dit, tcfg, source, objective(arm), base=base, progress=False, compile=True, init=model
    )
    return run


def judge(model_dir: Path, n: int, short_n: int) -> dict:
    from nanosora.evaluation import evaluate
    from nanosora.model import load

    m = load(model_dir)
    res = evaluate.run(m, TIME_SUITES, n=n, progress=False, validation=True)
    res |= evaluate.run(m, SHORT_SUITES, n=short_n, progress=False, validation=True)
    return {k: {kk: vv for kk, vv in r.items() if kk != "cases"} for k, r in res.items()}


def noise_reuse():
    """FreeNoise's noise reuse, patched into the sampler for a measurement: window k > 0 starts
    from window 0's noise with its latent frames shuffled (seeded by k)."""
    from nanosora.generation import flow, timeline

    real_noise, real_seed = flow.get_noise, timeline.window_seed

    def window_seed(seed, index):
        return (int(seed), index)  # carried to get_noise below

    def get_noise(shape, seeds, device=None, dtype=torch.float32):
        out = []
        for s in seeds:
            seed, index = s if isinstance(s, tuple) else (s, 0)
            z = real_noise(shape, [seed])[0]
            if index:
                g = torch.Generator().manual_seed(real_seed(seed, index))
                z = z[:, torch.randperm(z.shape[1], generator=g)]
            out.append(z)
        return torch.stack(out).to(device=device, dtype=dtype)

    timeline.window_seed, flow.get_noise = window_seed, get_noise


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("arms", nargs="*", choices=sorted(ARMS))
    ap.add_argument("--cache", help="latent cache with reference frames (the shipped autoencoder's)")
    ap.add_argument("--out", required=True, help="folder for the runs")
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget of each arm")
    ap.add_argument("--n", type=int, default=32, help="validation prompts per time suite")
    ap.add_argument("--short-n", type=int, default=16, help="validation prompts per short suite")
    ap.add_argument("--json", required=True, help="write the results here (merged with what it holds)")
    ap.add_argument("--steps", type=int, help="train this many steps instead (a smoke test)")
    ap.add_argument("--noise-reuse", help="judge this model directory with FreeNoise's noise reuse")
    ap.add_argument("--judge", help="judge this model directory as it is (a baseline)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = recorder(args.json)

    from nanosora.model import default_model_path
    from nanosora.modeldir import read_config
    from nanosora.training.cache import LatentCache
    from nanosora.training.train_dit import step_seconds

    source = LatentCache(args.cache) if args.arms else None
    dit_cfg = read_config(default_model_path()).dit
    times = {}
    if not args.steps:  # in turns, in one process, before any training
        for arm in args.arms:
            times[arm] = step_seconds(dit_cfg, source, 32, objective(arm), compile=True, steps=30)
            print(f"{arm}: {times[arm]:.3f} s per step", flush=True)
    for arm in args.arms:
        steps = args.steps or int(args.minutes * 60 / times[arm])
        t0 = time.perf_counter()
        run = train_arm(arm, source, steps, out)
        took = time.perf_counter() - t0
        row = {
            "objective": ARMS[arm],
            "steps": steps,
            "step_seconds": round(times.get(arm, took / steps), 4),
            "train_minutes": round(took / 60, 2),
        }
        row["validation"] = judge(run, args.n, args.short_n)
        record(arm, row)
    if args.judge:
        record(f"as is: {args.judge}", {"validation": judge(Path(args.judge), args.n, args.short_n)})
    if args.noise_reuse:  # last: the patch stays for the rest of the process
        noise_reuse()
        row = {"validation": judge(Path(args.noise_reuse), args.n, args.short_n)}
        record(f"noise reuse: {args.noise_reuse}", row)


if __name__ == "__main__":
    main()
