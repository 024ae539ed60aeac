"""The `generate` command (the parser lives in app.py): one video, or a batch from JSONL.

A command's options (`request_of`, in Model.generate's keywords) and a batch line (the
request's own JSON, as the server stores it) become the same request.GenerationRequest, every
one checked and its files read (request_media) before the model loads.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from pathlib import Path

from nanosora import vocabulary
from nanosora.cli.args import add_threads
from nanosora.config import DEFAULT_GUIDANCE, DEFAULT_GUIDANCE_UNTIL, DEFAULT_STEPS
from nanosora.generation.expand import ExpansionWarning
from nanosora.generation.request import DEFAULT_STRENGTH, MAX_GUIDANCE, MAX_SECONDS, GenerationRequest

EPILOG = """examples:
  nanosora generate "a red circle moves right" -o red.mp4
  nanosora generate "a small blue square bounces on a white background" -o b.gif --seed 3
  nanosora generate "a green triangle spins" -o wide.mp4 --width 128 --height 64 --seconds 2
  nanosora generate "a yellow circle" -o still.png --seconds 0        (one frame: text to image)
  nanosora generate "it moves right" --image first.png -o anim.mp4     (animate an image)
  nanosora generate "the circle keeps falling" --extend clip.mp4 --seconds 4 -o longer.mp4
  nanosora generate "a red circle moves left" --loop -o loop.gif
  nanosora generate "the square slides across" --connect a.mp4 b.mp4 -o joined.mp4
  nanosora generate "a blue circle moves right" --edit clip.mp4 --strength 0.6 -o blue.mp4
  nanosora generate --shots shots.json -o story.mp4     ([{"prompt": ..., "seconds": ...}, ...])
  nanosora generate "a red circle moves right" --seconds 60 -o minute.mp4
  nanosora generate --batch jobs.jsonl --out-dir out/   (one JSON job per line, model loaded once)

The prompt is expanded into a detailed caption like those the model was trained on
(printed, and stored in the file's metadata with the seed and every setting). What a
Flatland model has words for, and the prompt grammar: docs/prompts.md.
Outputs: .mp4, .gif, .png (contact sheet), or a folder ending in / (PNG frames)."""

# The keys of batch lines written before a batch line was the request's own JSON, and what
# each is now: said when an old line is read, rather than "unknown key".
OLD_KEYS = {
    "steps": '"sampling": {"steps": N}',
    "guidance": '"sampling": {"guidance": G}',
    "guidance_until": '"sampling": {"guidance_until": T}',
    "cond_guidance": '"sampling": {"cond_guidance": G}',
    "two_pass_guidance": '"sampling": {"one_pass_guidance": false}',
    "extend": '"mode": "extend", "video": FILE',
    "backward": '"direction": "backward" (with "mode": "extend")',
    "edit": '"mode": "edit", "video": FILE, "strength": S',
    "loop": '"mode": "loop"',
}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _number(kind, lo, hi, what):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{what} {text} is not valid: use {lo} to {hi}")
        return v

    return parse


def add_generate(sub, side, fps, positive_int) -> None:
    g = sub.add_parser(
        "generate",
        help="generate a video from a prompt with a trained model (text, image, extend, loop, ...)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g.add_argument("prompt", nargs="?", default=None, help='what to show, e.g. "a red circle moves right"')
    g.add_argument("-o", "--output", help="output: .mp4, .gif, .png (contact sheet) or a folder/")
    g.add_argument("--model", default=None, help="model directory (default: the shipped default model)")
    g.add_argument("--width", type=side, default=None, help="frame width, a multiple of 16 (default 64)")
    g.add_argument("--height", type=side, default=None, help="frame height, a multiple of 16 (default 64)")
    g.add_argument(
        "--size",
        metavar="WxH",
        type=_size(side),
        default=None,
        help="width and height at once, as the API says it",
    )
    g.add_argument(
        "--seconds",
        type=_number(float, 0, MAX_SECONDS, "seconds"),
        default=None,
        help=f"duration 0-{MAX_SECONDS:g} (default 2; 0 = one frame); for --extend/--connect the time added",
    )
    g.add_argument("--fps", type=fps, default=None, help="frames per second (default: the model's, 8)")
    g.add_argument("--seed", type=int, default=0, help="random seed: same seed, same video (default 0)")
    g.add_argument(
        "--steps", type=positive_int, default=DEFAULT_STEPS, help=f"sampling steps (default {DEFAULT_STEPS})"
    )
    g.add_argument(
        "--guidance",
        type=_number(float, 0, MAX_GUIDANCE, "guidance"),
        default=DEFAULT_GUIDANCE,
        help=f"text guidance (default {DEFAULT_GUIDANCE:g})",
    )
    g.add_argument(
        "--guidance-until",
        type=_number(float, 0, 1, "guidance-until"),
        default=DEFAULT_GUIDANCE_UNTIL,
        metavar="T",
        help="stop guiding once the sampling time (1 noise, 0 clean) falls to T; the last steps run "
        f"the text pass alone, which scores better and costs less (default {DEFAULT_GUIDANCE_UNTIL:g}; "
        "0: guide every step)",
    )
    g.add_argument(
        "--two-pass-guidance",
        action="store_true",
        help="with a guidance-distilled model: classifier-free guidance's two "
        "transformer passes per guided step instead of the distilled single pass",
    )
    g.add_argument(
        "--cond-guidance",
        type=_number(float, 0, MAX_GUIDANCE, "cond guidance"),
        default=1.0,
        help="guidance towards given frames in image/video modes (default 1)",
    )
    add_threads(g)
    g.add_argument("--negative-prompt", default="", help="what to steer away from (default none)")
    g.add_argument("--no-expand", action="store_true", help="use the prompt as it is, without expansion")
    g.add_argument(
        "--int8", action="store_true", help="int8 transformer (CPU; faster, measured in docs/measurements.md)"
    )
    g.add_argument(
        "--bf16",
        action="store_true",
        help="bf16 transformer (a CPU with AVX512-BF16 or AMX; faster, measured in docs/measurements.md)",
    )
    g.add_argument(
        "--compile", action="store_true", help="compile the transformer (slow start, faster steps)"
    )
    g.add_argument(
        "--lora",
        action="append",
        metavar="FILE[:SCALE]",
        help="a LoRA adapter trained on this model (`train lora`), at SCALE (default 1); repeatable",
    )
    modes = g.add_argument_group("modes (choose at most one, plus --loop)")
    modes.add_argument("--image", help="animate this image (png, jpg)")
    modes.add_argument("--image-frame", type=int, default=0, help="frame where the image stands (default 0)")
    modes.add_argument("--extend", metavar="VIDEO", help="continue this video by --seconds")
    modes.add_argument("--backward", action="store_true", help="with --extend: add time before the video")
    modes.add_argument("--loop", action="store_true", help="make the clip loop seamlessly")
    modes.add_argument("--connect", nargs=2, metavar=("A", "B"), help="a transition of --seconds from A to B")
    modes.add_argument("--edit", metavar="VIDEO", help="remake this video to match the prompt")
    modes.add_argument(
        "--strength",
        type=_number(float, 0.01, 1.0, "strength"),
        default=None,
        help=f"with --edit: how much may change, 0.01-1 (default {DEFAULT_STRENGTH:g}); at or below "
        "--guidance-until the edit runs unguided (set --guidance-until 0 to guide it)",
    )
    modes.add_argument("--shots", metavar="FILE", help='JSON list of shots [{"prompt": ..., "seconds": ...}]')
    g.add_argument(
        "--after",
        metavar="VIDEO",
        help="this video follows VIDEO across a cut: the objects VIDEO's prompts introduced are known "
        '("the red square" is VIDEO\'s), and its last frame shows them (a nanosora video)',
    )
    g.add_argument(
        "--layout",
        metavar="FILE",
        help="JSON layout to follow instead of the planner's: per object its words and boxes at key "
        'frames, [{"words": ..., "keyframes": [{"t": 0, "box": [x0, y0, x1, y1]}, ...]}, ...] '
        "(fractions of the frame; a model that reads layouts)",
    )
    g.add_argument(
        "--print-layout",
        action="store_true",
        help="print the layout the clip followed (the planner's, or --layout's) as JSON on stdout",
    )
    modes.add_argument("--batch", metavar="FILE", help="JSONL, one job per line; needs --out-dir")
    modes.add_argument("--out-dir", help="folder for --batch outputs (<name>.mp4 unless the job says)")
    g.set_defaults(func=cmd_generate)


def json_file(path: str, what: str):
    """The JSON a file holds (--shots, --layout), with an error naming the file."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON {what} ({e})") from None


def _size(side):
    """--size WxH: each side checked as --width and --height are."""

    def parse(text: str) -> tuple[int, int]:
        parts = text.lower().split("x")
        if len(parts) != 2:
            raise argparse.ArgumentTypeError(f"{text!r} is not WxH (for example 128x64)")
        return side(parts[0]), side(parts[1])

    return parse


def request_of(args: argparse.Namespace) -> GenerationRequest:
    """The request the options describe, in Model.generate's keywords, its files read: every
    value checked before any model is loaded."""
    from nanosora.generation.request_media import read_media

    if args.size is not None:
        if args.width is not None or args.height is not None:
            raise ValueError("give --size or --width/--height, not both")
        args.width, args.height = args.size
    if not args.prompt and args.shots is None:
        raise ValueError("a prompt is needed (or --shots)")
    if args.strength is not None and args.edit is None:
        raise ValueError("--strength goes with --edit (a video to remake)")
    if args.backward and args.extend is None:
        raise ValueError("--backward goes with --extend (a video to continue)")
    if args.extend is not None and args.edit is not None:
        raise ValueError("choose one mode, not extend and edit")
    given = {
        "width": args.width,
        "height": args.height,
        "seconds": args.seconds,
        "fps": args.fps,
        "steps": args.steps,
        "guidance": args.guidance,
        "guidance_until": args.guidance_until,
        "cond_guidance": args.cond_guidance,
        "shots": json_file(args.shots, "list of shots") if args.shots else None,
        "layout": json_file(args.layout, "layout") if args.layout else None,
        "after": args.after,
    }
    req = GenerationRequest.from_kwargs(
        args.prompt or "",
        seed=args.seed,
        negative_prompt=args.negative_prompt,
        expand=not args.no_expand,
        one_pass_guidance=not args.two_pass_guidance,
        image=args.image,
        image_frame=args.image_frame,
        video=args.extend or args.edit,
        extend=("backward" if args.backward else "forward") if args.extend else None,
        strength=(DEFAULT_STRENGTH if args.strength is None else args.strength) if args.edit else None,
        connect=tuple(args.connect) if args.connect else None,
        loop=args.loop,
        **{k: v for k, v in given.items() if v is not None},
    )
    return read_media(req)


def batch_request(job: dict, base: Path) -> GenerationRequest:
    """A batch line (the request's JSON, media by path relative to the batch file), its files
    read."""
    from nanosora.generation.request_media import read_media

    old = [k for k in job if k in OLD_KEYS]
    if old:
        raise ValueError(
            "a batch line is the request's JSON (as docs/usage.md shows): "
            + "; ".join(f"{k} is now {OLD_KEYS[k]}" for k in old)
        )
    if not job.get("prompt") and not job.get("shots"):
        raise ValueError("a prompt is needed (or shots)")
    media = [k for k in ("image", "video", "connect", "shots") if job.get(k)]
    if media and "mode" not in job:
        modes = {"image": "image or loop", "video": "extend or edit", "connect": "connect", "shots": "shots"}
        raise ValueError(f'a line with {media[0]} says its "mode" ({modes[media[0]]})')
    try:
        return read_media(GenerationRequest.from_json(job), base)
    except TypeError as e:  # a value of the wrong type, or an unknown key inside sampling
        raise ValueError(str(e)) from None


def read_batch(path: str | Path) -> list[tuple[str, GenerationRequest]]:
    """Every line of a batch file checked and its inputs read: [(output name, request)]."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise ValueError(f"{path}: cannot read the batch file ({e.strerror or e})") from None
    jobs, names = [], set()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            job = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} line {i}: not valid JSON ({e.msg})") from None
        if not isinstance(job, dict):
            raise ValueError(f"{path} line {i}: a job must be a JSON object")
        name = str(job.get("name", f"job-{i:04d}"))
        if not Path(name).suffix:
            name += ".mp4"
        if not NAME_RE.match(name) or Path(name).suffix.lower() not in (".mp4", ".gif", ".png"):
            raise ValueError(
                f"{path} line {i}: name {name!r} is not valid: use letters, digits, '_', '-', '.' "
                "and an extension .mp4, .gif or .png (or none, for .mp4)"
            )
        if name in names:
            raise ValueError(f"{path} line {i}: name {name!r} is used twice")
        names.add(name)
        job.pop("name", None)
        try:
            jobs.append((name, batch_request(job, path.parent)))
        except ValueError as e:
            raise ValueError(f"{path} line {i}: {e}") from None
    if not jobs:
        raise ValueError(f"{path}: no jobs (one JSON object per line)")
    return jobs


def cmd_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nanosora.cli.args import check_output
    from nanosora.model import load

    if args.batch:
        if not args.out_dir or args.output:
            raise ValueError("--batch writes to --out-dir DIR (and takes no -o)")
        out_dir = Path(args.out_dir)
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"--out-dir {out_dir}: exists and is not a folder")
        jobs = [(out_dir / name, kw) for name, kw in read_batch(args.batch)]
        out_dir.mkdir(parents=True, exist_ok=True)  # once every job has been checked
    else:
        if not args.output:
            raise ValueError("-o/--output is required (or --batch FILE --out-dir DIR)")
        check_output(args.output)
        out = Path(args.output) if not args.output.endswith("/") else args.output
        jobs = [(out, request_of(args))]
    model = load(args.model, int8=args.int8, compile=args.compile, bf16=args.bf16, lora=args.lora)
    # said once per job, before its sampling starts, rather than as a Python warning after it
    warnings.simplefilter("ignore", vocabulary.UnknownWordsWarning)
    warnings.simplefilter("ignore", ExpansionWarning)  # said from the metadata, below
    for out, req in tqdm(jobs, desc="jobs", unit="video", disable=len(jobs) == 1 or None):
        unknown = model.unknown_words(req.prompts)
        if unknown:
            print(
                f"warning: {out if len(jobs) > 1 else 'prompt'}: {vocabulary.message(unknown)}",
                file=sys.stderr,
            )
        bar = tqdm(desc="sampling", unit="step", disable=None, leave=len(jobs) == 1)

        def step(i, n, x, bar=bar):
            if bar.total != n or i < bar.n:
                bar.reset(total=n)
            bar.update(i - bar.n)

        video = model.run(req, callback=step)
        bar.close()
        path = video.save(out)
        caption = video.metadata["caption"]
        for note in video.metadata.get("not_expanded", []):
            print(f"warning: {out if len(jobs) > 1 else 'prompt'}: {note}", file=sys.stderr)
        print(f"caption: {caption if isinstance(caption, str) else ' | '.join(caption)}", file=sys.stderr)
        f, (h, w) = len(video.frames), video.frames.shape[1:3]
        frames = f"{f} frame" + ("s" if f != 1 else "")
        # with --print-layout, stdout holds the layout's JSON alone
        said = sys.stderr if args.print_layout else sys.stdout
        print(f"wrote {path} ({frames}, {w}x{h}, {video.fps:g} fps, {video.metadata['mode']})", file=said)
        if args.print_layout:
            print(json.dumps(video.metadata.get("layout")))
    return 0
