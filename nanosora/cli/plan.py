"""The `plan` command: what a video or a training run costs, before running it."""

from __future__ import annotations

import argparse
import dataclasses
import json

EPILOG = """examples:
  nanosora plan                                       (the default clip, on this CPU, calibrated now)
  nanosora plan --seconds 60 --width 128 --height 128
  nanosora plan --preset large --width 1920 --height 1088 --seconds 60 --fps 24 --steps 50 \
      --device h100 --count 8
  nanosora plan --train --preset large --width 256 --height 256 --seconds 4 --batch 1024 --steps 200000 \\
      --device h100 --count 256

Every figure follows from the printed assumptions: FLOPs from the architecture, time from
FLOPs over peak x efficiency (measured on this CPU, assumed on GPUs), energy from power x time."""


def add_plan(sub, positive_int) -> None:
    p = sub.add_parser(
        "plan",
        help="predict FLOPs, memory, time and energy of a video or a training run",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", default="default", help="transformer preset: tiny, default, base, large")
    p.add_argument("--dim", type=positive_int, help="override the transformer width")
    p.add_argument("--depth", type=positive_int, help="override the transformer depth")
    p.add_argument("--heads", type=positive_int, help="override the attention heads")
    p.add_argument("--width", type=positive_int, default=64)
    p.add_argument("--height", type=positive_int, default=64)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--fps", type=positive_int, default=8)
    p.add_argument("--steps", type=positive_int, default=None, help="sampling steps (20) or training steps")
    p.add_argument(
        "--passes",
        type=positive_int,
        default=None,
        help="transformer passes per guided step (default: on this CPU, the model's: 1 if it is "
        "guidance-distilled, else 2; 2 on GPUs)",
    )
    p.add_argument(
        "--guidance-until",
        type=float,
        default=None,
        metavar="T",
        help="steps at sampling times t <= T run one pass, as generate does (default: generate's)",
    )
    p.add_argument("--window", type=int, default=17, help="frames per window; 0 = the whole clip at once")
    p.add_argument("--device", choices=("cpu", "h100", "h200"), default="cpu")
    p.add_argument("--count", type=positive_int, default=1, help="number of devices")
    p.add_argument("--efficiency", type=float, default=None, help="override the fraction of peak reached")
    p.add_argument("--train", action="store_true", help="plan a training run instead of a video")
    p.add_argument("--batch", type=positive_int, default=32, help="training clips per step (default 32)")
    p.add_argument(
        "--model", default=None, help="calibrate the CPU with this model (default: the shipped one)"
    )
    p.add_argument(
        "--bf16",
        action="store_true",
        help="on this CPU, under bf16 autocast as generate --bf16 runs: peak and calibration in bf16 "
        "(needs a CPU with native bf16)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    from nanosora import plan
    from nanosora.config import VAE_PRESETS
    from nanosora.generation import flow
    from nanosora.networks.dit import DIT_PRESETS, count_params

    if args.preset not in DIT_PRESETS:
        raise ValueError(f"--preset {args.preset!r} is not known: use {', '.join(DIT_PRESETS)}")
    if not 0 < args.seconds <= 3600:
        raise ValueError(f"--seconds {args.seconds} is not valid: use (0, 3600]")
    if args.width % 16 or args.height % 16:
        raise ValueError(f"size {args.width}x{args.height}: width and height must be multiples of 16")
    over = {k: getattr(args, k) for k in ("dim", "depth", "heads") if getattr(args, k)}
    dit = dataclasses.replace(DIT_PRESETS[args.preset], **over)
    dit.validate()
    passes = args.passes or 2
    if args.device == "cpu":
        from nanosora.config import DEFAULT_GUIDANCE
        from nanosora.model import load

        model = load(args.model, bf16=args.bf16)
        passes = args.passes or model.guidance_passes(DEFAULT_GUIDANCE)
        device = plan.calibrate_cpu(model, bf16=args.bf16)
    elif args.bf16:
        raise ValueError("--bf16 is for planning on this CPU; the GPU profiles are bf16 already")
    else:
        device = plan.DEVICES[args.device]
    if args.efficiency is not None:
        if not 0 < args.efficiency <= 1:
            raise ValueError("--efficiency must be in (0, 1]")
        device = dataclasses.replace(
            device, efficiency=args.efficiency, source=device.source + "; efficiency set"
        )
    device = device.scaled(args.count)
    job = plan.Job(dit=dit, vae=VAE_PRESETS["default"], width=args.width, height=args.height,
                   seconds=args.seconds, fps=args.fps, steps=args.steps or 20, passes=passes,
                   window=args.window)  # fmt: skip
    if args.guidance_until is not None:
        flow.check_until(args.guidance_until)
        job = dataclasses.replace(job, guidance_until=args.guidance_until)
    params = count_params(dit)
    if args.train:
        n = plan.windows(dataclasses.replace(job, window=0))[0]
        f = plan.generation_flops(dataclasses.replace(job, window=0, steps=1, passes=1))
        flops = plan.training_flops(dit, f["tokens_per_window"], args.batch, args.steps or 6000)
        est = plan.estimate(flops, device)
        out = {"what": "training", "clip_frames": n, "tokens_per_clip": f["tokens_per_window"],
               "batch": args.batch, "steps": args.steps or 6000, "flops": flops}  # fmt: skip
    else:
        f = plan.generation_flops(job)
        est = plan.estimate(f["total"], device, f["calls"])
        out = {
            "what": "generation",
            "windows": len(plan.windows(job)),
            "tokens_per_window": f["tokens_per_window"],
            "flops": f["total"],
            "flops_transformer": f["transformer"],
            "flops_autoencoder": f["autoencoder"],
            "memory_gb": plan.generation_memory_gb(job, 4 if args.device == "cpu" else 2),
        }
    out.update(
        model={"preset": args.preset, "params": params, **dataclasses.asdict(dit)},
        video={"width": args.width, "height": args.height, "seconds": args.seconds, "fps": args.fps},
        device=dataclasses.asdict(device),
        seconds=est["seconds"],
        kwh=est["kwh"],
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    name = args.preset + (f" + {over}" if over else "")
    print(f"{out['what']} with a {params / 1e6:,.1f}M-parameter transformer ({name})")
    print(f"  video: {args.width}x{args.height}, {args.seconds:g} s at {args.fps} fps")
    if args.train:
        print(f"  {out['tokens_per_clip']:,} tokens per clip, batch {args.batch}, {out['steps']:,} steps")
    else:
        w, t = out["windows"], out["tokens_per_window"]
        guided = plan.guided_steps(job, t)
        print(f"  {w} window(s) of {t:,} tokens, {job.steps} steps, {guided} guided ({job.passes} passes)")
        print(f"  memory: about {out['memory_gb']:.2f} GB")
    print(f"  compute: {out['flops']:.3g} FLOPs")
    print(f"  device: {device.name}: peak {device.peak_flops / 1e12:.3g} TFLOP/s each, efficiency "
          f"{device.efficiency:.0%}, {device.watts:g} W each ({device.source})")  # fmt: skip
    secs = out["seconds"]
    when = (
        f"{secs:.3g} s"
        if secs < 120
        else f"{secs / 3600:.3g} h"
        if secs < 3 * 86400
        else f"{secs / 86400:.3g} days"
    )
    print(f"  time: {when}; energy: {out['kwh']:.3g} kWh")
    return 0
