"""The `export` command: a trained run folder into a model directory to ship, or a model into a
diffusers folder."""

from __future__ import annotations

import argparse


def add_export(sub) -> None:
    x = sub.add_parser(
        "export",
        help="turn a trained run folder into a model directory to ship, or a model into a diffusers folder",
        epilog="examples:\n  nanosora export runs/default/model models/mine --name mine\n"
        "  nanosora export --format diffusers nanosora-diffusers      # the shipped model\n"
        "  nanosora export --format diffusers models/mine mine-diffusers\n\n"
        "A diffusers folder loads with diffusers.DiffusionPipeline.from_pretrained(OUT,\n"
        "trust_remote_code=True), nanosora and diffusers installed (pip install 'nanosora[diffusers]').",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    x.add_argument(
        "paths",
        nargs="+",
        metavar="RUN OUT",
        help="the run folder (config.json, vae.safetensors, dit.safetensors) and the new folder "
        "(must not exist, or be empty); with --format diffusers the model may be left out (the shipped one)",
    )
    x.add_argument(
        "--format",
        choices=("nanosora", "diffusers"),
        default="nanosora",
        help="nanosora: a model directory (default); diffusers: diffusers' folder layout",
    )
    x.add_argument("--name", default=None, help="the model's name (default: the run's)")
    x.add_argument("--fp32", action="store_true", help="keep float32 weights (twice the size)")
    x.add_argument("--checkpoint", default=None, help="a training checkpoint to take the EMA weights from")
    x.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from nanosora import modeldir

    paths = args.paths
    if len(paths) > 2 or (len(paths) == 1 and args.format == "nanosora"):
        raise ValueError(
            "export takes RUN OUT (with --format diffusers, OUT alone exports the shipped model); "
            f"got {len(paths)} paths"
        )
    if args.format == "diffusers":
        if args.name or args.fp32 or args.checkpoint:
            raise ValueError(
                "--name, --fp32 and --checkpoint go with --format nanosora: export the run first"
            )
        from nanosora.model import default_model_path

        try:
            from nanosora import diffusers_pipeline
        except ImportError as e:
            raise ValueError(str(e)) from None
        src = paths[0] if len(paths) == 2 else default_model_path()
        out = diffusers_pipeline.export(src, paths[-1])
    else:
        out = modeldir.export(
            paths[0], paths[1], half=not args.fp32, checkpoint=args.checkpoint, name=args.name
        )
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
    print(f"wrote {out} ({size:.1f} MB)")
    return 0
