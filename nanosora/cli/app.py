"""The `nanosora` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from nanosora import __version__
from nanosora.atomic import atomic_path
from nanosora.cli import args as cli_args

EPILOG = """examples:
  nanosora world render "a red circle moves right" -o red.mp4
  nanosora world render "a small blue square bounces on a white background" -o b.gif --width 128
  nanosora world sample --n 100 -o data/flatland
  nanosora world score red.mp4 "a red circle moves right"
"""


def _clip_options(p: argparse.ArgumentParser, still: bool = False) -> None:
    p.add_argument(
        "--width",
        type=cli_args.side,
        default=64,
        help="frame width: a multiple of 16 from 32 to 512 (default 64)",
    )
    p.add_argument(
        "--height",
        type=cli_args.side,
        default=64,
        help="frame height: a multiple of 16 from 32 to 512 (default 64)",
    )
    p.add_argument(
        "--seconds",
        type=cli_args.seconds_or_still if still else cli_args.seconds,
        default=2.0,
        help=f"duration, up to {cli_args.MAX_SECONDS:g} (default 2)" + ("; 0: one frame" if still else ""),
    )
    p.add_argument("--fps", type=cli_args.fps, default=8, help="frames per second, 1-30 (default 8)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed: the same seed gives the same clip (default 0)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="nanosora",
        description="nanosora: a Sora-style text-to-video system that runs on a laptop CPU.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"nanosora {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    world = sub.add_parser("world", help="Flatland, the built-in world: render, sample, score")
    wsub = world.add_subparsers(dest="world_command", metavar="ACTION")
    wsub.required = True

    r = wsub.add_parser(
        "render",
        help="render a clip of a prompt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='example:\n  nanosora world render "a red circle and a green square spins" -o a.mp4',
    )
    r.add_argument(
        "prompt", help='a Flatland prompt, e.g. "a small blue square bounces on a white background"'
    )
    r.add_argument(
        "-o",
        "--output",
        required=True,
        help="output: .mp4, .gif, .png (contact sheet) or a folder/ for PNG frames",
    )
    _clip_options(r, still=True)
    r.set_defaults(func=cmd_world_render)

    s = wsub.add_parser("sample", help="write N random clips plus captions.jsonl (a training set)")
    s.add_argument("--n", type=cli_args.positive_int, required=True, help="how many clips")
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.add_argument("--format", choices=["mp4", "gif", "png"], default="mp4", help="clip format (default mp4)")
    _clip_options(s)
    s.set_defaults(func=cmd_world_sample)

    sc = wsub.add_parser(
        "score",
        help="judge a clip against a prompt (exit 0 pass, 1 fail, 2 bad input)",
        epilog="Prints the verdict as JSON: every check the scorer made and why it passed or failed.",
    )
    sc.add_argument("video", help="a video (.mp4, .gif) or image file")
    sc.add_argument("prompt", help="the prompt to judge it against")
    sc.set_defaults(func=cmd_world_score)

    from nanosora.cli import evaluate as cli_evaluate
    from nanosora.cli import export as cli_export
    from nanosora.cli import generate as cli_generate
    from nanosora.cli import plan as cli_plan
    from nanosora.cli import serve as cli_serve
    from nanosora.cli import train as cli_train

    cli_generate.add_generate(sub, cli_args.side, cli_args.fps, cli_args.positive_int)
    cli_train.add_train(sub, cli_args.positive_int)
    cli_evaluate.add_eval(sub)
    cli_train.add_cache(sub, cli_args.positive_int)
    cli_export.add_export(sub)
    cli_serve.add_serve(sub, cli_args.positive_int)
    cli_plan.add_plan(sub, cli_args.positive_int)
    vf = sub.add_parser(
        "verify",
        help="check a video's provenance: its sealed manifest, its invisible watermark and its C2PA "
        "Content Credentials",
        epilog="Prints JSON (verdict, manifest, watermark, Content Credentials). Exit 0: authentic and "
        "unchanged; 1: changed, re-encoded or not from nanosora; 2: unreadable file.",
    )
    vf.add_argument("file", help="a video or image (.mp4, .gif, .png)")
    vf.set_defaults(func=cmd_verify)
    return parser


def cmd_verify(args: argparse.Namespace) -> int:
    from nanosora.provenance import verify

    report = verify(args.file)
    print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    print(report.verdict(), file=sys.stderr)
    return 0 if report.authentic else 1


def cmd_world_render(args: argparse.Namespace) -> int:
    from nanosora import video
    from nanosora.generation.request import clip_frames
    from nanosora.world.caption import detailed_caption
    from nanosora.world.parse import scene_from_prompt
    from nanosora.world.render import render

    cli_args.check_output(args.output)
    rng = np.random.default_rng(args.seed)
    # a still (--seconds 0) is the first frame of a clip one frame long, as generate makes it
    secs = args.seconds or 1.0 / args.fps
    scene = scene_from_prompt(args.prompt, rng, aspect=args.width / args.height, seconds=secs)
    caption = detailed_caption(scene, secs)
    # rendered to the frame at `seconds`, shown for seconds x fps frames like generate's
    frames = render(scene, args.width, args.height, args.fps, secs)[: clip_frames(args.seconds, args.fps)]
    meta = {
        "generator": f"nanosora {__version__} world render",
        "prompt": args.prompt,
        "caption": caption,
        "seed": args.seed,
        "width": args.width,
        "height": args.height,
        "fps": args.fps,
        "seconds": args.seconds,
    }
    out = video.write(args.output, frames, args.fps, meta)
    print(f"caption: {caption}", file=sys.stderr)
    n = f"{len(frames)} frame{'s' if len(frames) != 1 else ''}"
    print(f"wrote {out} ({n}, {args.width}x{args.height}, {args.fps} fps)")
    return 0


def cmd_world_sample(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nanosora import video
    from nanosora.world.caption import detailed_caption, short_prompt
    from nanosora.world.render import render
    from nanosora.world.sample import sample_scene

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    rows = []
    for i in tqdm(range(args.n), desc="rendering", unit="clip", disable=None):
        scene = sample_scene(rng, aspect=args.width / args.height, seconds=args.seconds)
        name = f"clip_{i:05d}.{args.format}"
        frames = render(scene, args.width, args.height, args.fps, args.seconds)
        caption = detailed_caption(scene, args.seconds, rng)
        prompt = short_prompt(scene, rng, p=0.3)
        video.write(out / name, frames, args.fps, {"caption": caption, "prompt": prompt, "seed": args.seed})
        rows.append({"file": name, "caption": caption, "prompt": prompt})
    with atomic_path(out / "captions.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {args.n} clips and captions.jsonl to {out}")
    return 0


def cmd_world_score(args: argparse.Namespace) -> int:
    from nanosora import video
    from nanosora.world.score import score

    clip = video.read(args.video)
    verdict = score(clip.frames, clip.fps, args.prompt)
    print(json.dumps(verdict.to_dict(), indent=2))
    print(verdict.explain(), file=sys.stderr)
    return 0 if verdict.passed else 1


class Parser(argparse.ArgumentParser):
    """argparse with the error first and a one-line hint, instead of the whole usage first
    (subcommands inherit it: add_subparsers makes parsers of its parser's class)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n  (see `{self.prog} --help`)\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if hasattr(args, "threads"):
            from nanosora import device

            device.use_threads(args.threads)
        return args.func(args)
    except ValueError as e:  # bad input of any kind: a clear message, exit 2
        print(f"nanosora: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`| head`): not an error, nothing to say
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (so the exit's flush cannot fail again)
        return 0
    except OSError as e:  # the system refused (disk full, permissions): say what and where, exit 1
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"nanosora: error: {e.strerror or e}{where}; nothing was overwritten", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nanosora: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
