"""Validators of command-line values, shared by every subcommand: each refuses a bad value
with what is accepted (argparse shows it as the error), or checks an output path before any
work is done."""

from __future__ import annotations

import argparse
from pathlib import Path

from nanosora.generation.request import MAX_SECONDS


def seconds(text: str, still: bool = False) -> float:
    """A duration above 0 and up to the request's limit; `still`: 0 too (one frame, a still
    image, as `generate --seconds 0` makes)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    low_ok = v >= 0 if still else v > 0
    if not (low_ok and v <= MAX_SECONDS):
        least = "0 (one frame)" if still else "a duration above 0"
        raise argparse.ArgumentTypeError(f"{text} is not valid: use {least} up to {MAX_SECONDS:g} seconds")
    return v


def seconds_or_still(text: str) -> float:
    return seconds(text, still=True)


def side(text: str) -> int:
    from nanosora.world import spec

    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of pixels") from None
    try:
        spec.check_frame_size(v, spec.MIN_SIDE)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).replace("width ", "")) from None
    return v


def fps(text: str) -> int:
    from nanosora.world import spec

    try:
        v = int(text)
        spec.check_fps(v)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"fps {text!r} is not valid: use a whole number from {spec.MIN_FPS} to {spec.MAX_FPS}"
        ) from None
    return v


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} is not valid: use 1 or more")
    return v


def ensure_parent(path: str) -> None:
    parent = Path(path).parent if not path.endswith("/") else Path(path)
    if not parent.exists():
        raise ValueError(f"{path}: folder {parent} does not exist")


def check_output(path: str) -> None:
    from nanosora.video import WRITE_EXTS

    p = Path(path)
    if not (path.endswith("/") or p.is_dir()) and p.suffix.lower() not in WRITE_EXTS:
        raise ValueError(
            f"{path}: unknown extension {p.suffix or '(none)'!r}; use {', '.join(WRITE_EXTS)} "
            "or a folder ending in / for PNG frames"
        )
    ensure_parent(path if not path.endswith("/") else str(p.parent) + "/x")


def add_threads(p) -> None:
    """--threads for a command that runs the model on the CPU (cli.main applies it)."""
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads for the model (default: the cores other processes leave free)",
    )
