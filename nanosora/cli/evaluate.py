"""The `eval` command: a model on the world benchmark, or an autoencoder on real clips."""

from __future__ import annotations

import argparse
import json

from nanosora.cli.args import add_threads


def add_eval(sub) -> None:
    from nanosora.config import DEFAULT_GUIDANCE, DEFAULT_GUIDANCE_UNTIL, DEFAULT_STEPS

    e = sub.add_parser(
        "eval",
        help="the world benchmark (scored by the Flatland scorer), or `eval vae`",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  nanosora eval                        (the shipped model, every suite)\n"
        "  nanosora eval --model runs/default/model --suite single --n 8\n"
        "  nanosora eval vae --model runs/vae --json",
    )
    e.add_argument("--model", default=None, help="model directory (default: the shipped default model)")
    from nanosora.evaluation.evaluate import SUITE_NAMES

    e.add_argument(
        "--suite",
        action="append",
        choices=SUITE_NAMES,
        metavar="SUITE",
        help=f"a suite to run (repeatable; default all: {', '.join(SUITE_NAMES)})",
    )
    e.add_argument("--n", type=int, default=16, help="prompts per suite (default 16)")
    e.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, help=f"sampling steps (default {DEFAULT_STEPS})"
    )
    e.add_argument(
        "--guidance",
        type=float,
        default=DEFAULT_GUIDANCE,
        help=f"guidance scale (default {DEFAULT_GUIDANCE:g})",
    )
    e.add_argument(
        "--guidance-until",
        type=float,
        default=DEFAULT_GUIDANCE_UNTIL,
        metavar="T",
        help=f"stop guiding at sampling time T (default {DEFAULT_GUIDANCE_UNTIL:g}; 0: every step)",
    )
    e.add_argument(
        "--validation",
        action="store_true",
        help="the validation split (other prompts and seeds): for choosing designs and settings, "
        "so that the benchmark's prompts only judge what was chosen",
    )
    e.add_argument("--out", default=None, help="folder for world_benchmark.json and samples.png")
    add_threads(e)
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.add_argument("--int8", action="store_true", help="evaluate the int8-quantized transformer")
    e.add_argument("--bf16", action="store_true", help="evaluate the transformer under CPU bf16 autocast")
    e.add_argument("--compile", action="store_true", help="evaluate with the transformer compiled")
    e.add_argument(
        "--two-pass-guidance",
        action="store_true",
        help="with a guidance-distilled model: classifier-free guidance's two passes per step instead of one",
    )
    e.add_argument(
        "--reference",
        action="store_true",
        help="score the renderer's ground truth instead of a model (the ceiling each suite allows)",
    )
    e.add_argument(
        "--through-vae",
        action="store_true",
        help="with --reference: pass each ground-truth clip through the model's autoencoder first "
        "(the ceiling its latents allow)",
    )
    e.set_defaults(func=cmd_eval_world)
    esub = e.add_subparsers(dest="eval_command", metavar="WHAT")
    v = esub.add_parser(
        "vae",
        help="autoencoder PSNR and SSIM on held-out Flatland, real video and photos",
        epilog='With --json, prints {"flatland": {"psnr": ..., "ssim": ...}, "real_video": ..., '
        '"photos": ...}.',
    )
    v.add_argument("--model", default=None, help="model directory (default: the shipped default model)")
    v.add_argument("--n", type=int, default=32, help="Flatland clips per aspect ratio (default 32)")
    v.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    v.add_argument("--flatland-only", action="store_true", help="skip the out-of-domain data sets")
    v.set_defaults(func=cmd_eval_vae)


def cmd_eval_world(args: argparse.Namespace) -> int:
    from nanosora.evaluation import evaluate
    from nanosora.generation import flow
    from nanosora.model import load as load_model

    if args.n < 1 or args.steps < 1 or args.guidance < 0:
        raise ValueError("--n and --steps must be 1 or more and --guidance 0 or more")
    flow.check_until(args.guidance_until)
    if args.through_vae and not args.reference:
        raise ValueError(
            "--through-vae goes with --reference (it scores ground truth through the autoencoder)"
        )
    if args.reference:
        from nanosora import modeldir
        from nanosora.model import default_model_path

        through = modeldir.load_vae(args.model or default_model_path()) if args.through_vae else None
        model = evaluate.WorldReference(through)
    else:
        model = load_model(args.model, int8=args.int8, compile=args.compile, bf16=args.bf16)
    results = evaluate.run(
        model,
        args.suite,
        n=args.n,
        steps=args.steps,
        guidance=args.guidance,
        guidance_until=args.guidance_until,
        out_dir=args.out,
        one_pass_guidance=not args.two_pass_guidance,
        validation=args.validation,
    )
    if args.json:
        print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "cases"} for k, v in results.items()}))
    else:
        print(evaluate.table(results))
    return 0


def cmd_eval_vae(args: argparse.Namespace) -> int:
    from nanosora import modeldir
    from nanosora.evaluation.eval_vae import evaluate, table
    from nanosora.model import default_model_path

    if args.n < 1:
        raise ValueError(f"--n {args.n} is not valid: use 1 or more clips")
    vae = modeldir.load_vae(args.model or default_model_path())
    result = evaluate(vae, n=args.n, real=not args.flatland_only)
    print(json.dumps(result) if args.json else table(result))
    return 0
