"""The `generate` command (the parser lives in cli.py)."""

from __future__ import annotations

import argparse
import sys

EPILOG = """examples:
  nanosora generate "a red circle moves right" -o red.mp4
  nanosora generate "a small blue square bounces on a white background" -o b.gif --seed 3
  nanosora generate "a green triangle spins" -o wide.mp4 --width 128 --height 64 --seconds 2
  nanosora generate "a yellow circle" -o still.png --seconds 0      (one frame: text to image)

The prompt is expanded into a detailed caption like those the model was trained on
(printed, and stored in the file's metadata with the seed and every setting)."""


def _guidance(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= v <= 30:
        raise argparse.ArgumentTypeError(f"guidance {text} is not valid: use a number from 0 to 30")
    return v


def _gen_seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= v <= 60:
        raise argparse.ArgumentTypeError(f"{text} is not valid: use 0 (one frame) to 60 seconds")
    return v


def add_generate(sub, side, fps, positive_int) -> None:
    g = sub.add_parser(
        "generate",
        help="generate a video from a prompt with a trained model",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g.add_argument("prompt", help='what to show, e.g. "a red circle moves right on a black background"')
    g.add_argument("-o", "--output", required=True, help="output: .mp4, .gif or .png (contact sheet)")
    g.add_argument("--model", default=None, help="model directory (default: the shipped default model)")
    g.add_argument("--width", type=side, default=64, help="frame width, a multiple of 16 (default 64)")
    g.add_argument("--height", type=side, default=64, help="frame height, a multiple of 16 (default 64)")
    g.add_argument("--seconds", type=_gen_seconds, default=2.0, help="duration, 0-60 (default 2)")
    g.add_argument("--fps", type=fps, default=None, help="frames per second (default: the model's, 8)")
    g.add_argument("--seed", type=int, default=0, help="random seed: same seed, same video (default 0)")
    g.add_argument("--steps", type=positive_int, default=20, help="sampling steps (default 20)")
    g.add_argument("--guidance", type=_guidance, default=4.0, help="text guidance scale (default 4)")
    g.add_argument("--negative-prompt", default="", help="what to steer away from (default none)")
    g.add_argument("--no-expand", action="store_true", help="use the prompt as it is, without expansion")
    g.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nanosora import pipeline
    from nanosora.cli import _check_output

    _check_output(args.output)
    model = pipeline.load(args.model)
    fps = args.fps or model.fps
    frames = 1 + 4 * round(args.seconds * fps / 4)
    bar = tqdm(total=args.steps, desc="sampling", unit="step", disable=None)
    video = model.generate(
        args.prompt,
        width=args.width,
        height=args.height,
        frames=frames,
        fps=fps,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        negative_prompt=args.negative_prompt,
        expand=not args.no_expand,
        callback=lambda i, n, x: bar.update(1),
    )
    bar.close()
    out = video.save(args.output)
    print(f"caption: {video.metadata['caption']}", file=sys.stderr)
    print(f"wrote {out} ({len(video.frames)} frames, {args.width}x{args.height}, {fps} fps)")
    return 0
