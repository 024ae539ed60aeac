"""The `train` and `cache` commands (the parser lives in app.py)."""

from __future__ import annotations

import argparse
import dataclasses
import sys


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text} is not valid: use a number above 0")
    return v


def _schedule_options(p, positive_int, steps: int, batch: int, lr: float, per: str = "step") -> None:
    """The options every training command shares: how long, how big, how fast, how often saved."""
    p.add_argument("--steps", type=positive_int, default=steps, help=f"optimizer steps (default {steps})")
    p.add_argument("--batch", type=positive_int, default=batch, help=f"clips per {per} (default {batch})")
    shown = f"{lr:.0e}".replace("e-0", "e-")  # 1e-3, as written elsewhere
    p.add_argument("--lr", type=_positive_float, default=lr, help=f"peak learning rate (default {shown})")
    p.add_argument(
        "--ckpt-every", type=positive_int, default=250, help="steps between checkpoints (default 250)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _adapt_options(p, positive_int, lr: float, out: str) -> None:
    """The options of the commands that adapt a trained model to your clips (lora, finetune)."""
    p.add_argument("--model", default=None, help="the model to start from (default: the shipped model)")
    p.add_argument(
        "--data", required=True, help="a folder of clips with captions (see docs/usage.md for the formats)"
    )
    p.add_argument("--out", required=True, help=f"run folder: checkpoints, log, loss plot and {out}")
    _schedule_options(p, positive_int, steps=500, batch=8, lr=lr)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast on a CPU with native bf16")


def _train_config(args: argparse.Namespace, warmup: int, **more):
    """Those options as a TrainConfig, warming up for `warmup` steps (a tenth of short runs)."""
    from nanosora.training import train

    return train.TrainConfig(
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        warmup=min(warmup, args.steps // 10 + 1),
        ckpt_every=args.ckpt_every,
        seed=args.seed,
        **more,
    )


def add_train(sub, positive_int) -> None:
    from nanosora.config import VAE_PRESETS
    from nanosora.training.recipe import RECIPES

    t = sub.add_parser(
        "train",
        help="train a whole model (--preset), one network (vae, dit, distill), an adapter (lora) "
        "or a fine-tune (finetune)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  nanosora train --preset default --out runs/default    (autoencoder, cache, transformer)\n"
        "  nanosora train vae --out runs/vae\n"
        "  nanosora train dit --cache cache/ --vae runs/vae --out runs/dit\n\n"
        "Rerunning an interrupted command continues it from its newest checkpoint.",
    )
    t.add_argument("--preset", choices=list(RECIPES), help="train every stage of this recipe from scratch")
    t.add_argument("--out", help="run folder for --preset (vae/, cache/, model/)")
    t.set_defaults(func=cmd_train_recipe)
    tsub = t.add_subparsers(dest="train_command", metavar="NETWORK")
    v = tsub.add_parser(
        "vae",
        help="train the causal video autoencoder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  nanosora train vae --out runs/vae --steps 3000\n"
        "  nanosora train vae --data my_clips/ --out runs/my_vae\n\n"
        "Rerunning the same command resumes from the newest checkpoint in --out.",
    )
    v.add_argument(
        "--preset", choices=list(VAE_PRESETS), default="default", help="model size (default: default)"
    )
    v.add_argument(
        "--out", required=True, help="run folder: checkpoints, log, loss plot, and the model files"
    )
    v.add_argument("--data", default="flatland", help="'flatland' (default) or a folder of .mp4 files")
    _schedule_options(v, positive_int, steps=8000, batch=8, lr=1e-3)
    v.add_argument(
        "--bf16",
        action="store_true",
        help="bf16 autocast on a CPU with native bf16 (AVX512-BF16 or AMX): faster steps; default fp32",
    )
    v.set_defaults(func=cmd_train_vae)

    from nanosora.networks.dit import DIT_PRESETS

    d = tsub.add_parser(
        "dit",
        help="train the diffusion transformer on a latent cache",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  nanosora train dit --cache cache/flatland --vae runs/vae --out runs/dit --steps 5000\n"
        "  torchrun --nproc-per-node 2 -m nanosora train dit \\\n"
        "      --cache cache/flatland --vae runs/vae --out runs/dit\n\n"
        "Rerunning the same command resumes from the newest checkpoint in --out. The run folder is a\n"
        "model directory (config.json, vae.safetensors, dit.safetensors) at every checkpoint.",
    )
    d.add_argument(
        "--preset", choices=list(DIT_PRESETS), default="default", help="model size (default: default)"
    )
    d.add_argument(
        "--cache",
        help="latent cache folder (from `nanosora cache`); without it, clips are encoded on the fly",
    )
    d.add_argument(
        "--data", default="flatland", help="with no --cache: 'flatland' (default) or a folder of .mp4"
    )
    d.add_argument("--vae", required=True, help="model directory of the autoencoder the cache was built with")
    d.add_argument("--out", required=True, help="run folder: checkpoints, log, loss plot and the model files")
    _schedule_options(d, positive_int, steps=5000, batch=32, lr=1e-3, per="step and process")
    d.add_argument(
        "--accum", type=positive_int, default=1, help="gradient accumulation micro-batches (default 1)"
    )
    d.add_argument(
        "--compile",
        action="store_true",
        help="compile the model with torch.compile: faster steps (1.14x under --bf16 here) after "
        "a minute or two of compiling",
    )
    d.add_argument(
        "--bf16",
        action="store_true",
        help="bf16 autocast on a CPU with native bf16 (AVX512-BF16 or AMX): faster steps; "
        "default fp32 on CPU (CUDA always uses bf16)",
    )
    d.add_argument(
        "--fsdp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="under torchrun, shard with FSDP2 (default: for presets of 100M parameters or more)",
    )
    d.set_defaults(func=cmd_train_dit)

    g = tsub.add_parser(
        "distill",
        help="guidance distillation: a transformer that guides in one pass per step",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n"
        "  nanosora train distill --teacher runs/dit --cache cache/flatland --out runs/distilled\n\n"
        "The student gives classifier-free guidance's velocity at any scale from 1 to 13 in one\n"
        "transformer pass instead of two. --out is a complete model directory at every checkpoint;\n"
        "rerunning the same command resumes from its newest checkpoint.",
    )
    g.add_argument("--teacher", required=True, help="model directory of the trained transformer")
    g.add_argument("--cache", required=True, help="the latent cache the teacher was trained on")
    g.add_argument("--out", required=True, help="run folder: checkpoints, log, loss plot and the model files")
    _schedule_options(g, positive_int, steps=1500, batch=32, lr=3e-4)
    g.add_argument(
        "--bf16", action="store_true", help="bf16 autocast on a CPU with native bf16 (see train dit)"
    )
    g.set_defaults(func=cmd_train_distill)

    from nanosora.networks.lora import TARGETS

    lo = tsub.add_parser(
        "lora",
        help="a LoRA adapter on a model's transformer, from a folder of your clips",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n"
        "  nanosora train lora --data my_clips/ --out runs/my-lora --steps 500\n"
        '  nanosora generate "..." --lora runs/my-lora:0.8 -o out.mp4\n\n'
        "--out holds pytorch_lora_weights.safetensors (diffusers/PEFT keys) and lora_config.json\n"
        "at every checkpoint; rerunning the same command resumes from its newest checkpoint.\n"
        "The adapter loads only onto the model it was trained on.",
    )
    _adapt_options(lo, positive_int, lr=1e-3, out="the adapter")
    lo.add_argument("--rank", type=positive_int, default=8, help="adapter rank (default 8)")
    lo.add_argument("--alpha", type=_positive_float, default=None, help="scale numerator (default: the rank)")
    lo.add_argument(
        "--targets",
        nargs="+",
        choices=TARGETS,
        default=list(TARGETS),
        metavar="MODULE",
        help=f"linear layers to adapt in every block (default all: {' '.join(TARGETS)})",
    )
    lo.set_defaults(func=cmd_train_lora)

    ft = tsub.add_parser(
        "finetune",
        help="a full fine-tune of a model's transformer on a folder of your clips",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n"
        "  nanosora train finetune --data my_clips/ --out runs/mine --steps 500\n"
        '  nanosora generate "..." --model runs/mine -o out.mp4\n\n'
        "Every weight of the transformer trains (the autoencoder and text encoder stay as they are);\n"
        "--out is a complete model directory at every checkpoint. Rerun to resume.",
    )
    _adapt_options(ft, positive_int, lr=1e-4, out="the model files")
    ft.set_defaults(func=cmd_train_finetune)


def cmd_train_dit(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from nanosora import modelconfig, modeldir
    from nanosora.networks.dit import DIT_PRESETS
    from nanosora.training import cache
    from nanosora.training.train_dit import DiTTrainConfig, train_dit

    vae_cfg = modeldir.read_config(args.vae)
    if args.cache:
        source = cache.LatentCache(args.cache)
    else:
        from nanosora.training import data

        source = cache.OnTheFly(modeldir.load_vae(args.vae), data.make_source(args.data, for_text=True))
    preset = DIT_PRESETS[args.preset]
    c = source.latent_channels
    if c != vae_cfg.vae.latent_channels:
        raise ValueError(
            f"{args.cache} holds {c}-channel latents but {args.vae} makes {vae_cfg.vae.latent_channels}"
        )
    cfg = dataclasses.replace(preset, latent_channels=c, text_dim=source.text_dim)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if Path(args.vae).resolve() != out.resolve():
        shutil.copyfile(Path(args.vae) / "vae.safetensors", out / "vae.safetensors")
    tcfg = _train_config(args, warmup=250, accum=args.accum)
    base = modelconfig.build(
        vae_cfg.vae,
        text=cache.text_config(source),
        runs=vae_cfg.training,
        name=out.name,
        window=cache.WINDOW,
        trained_on=modelconfig.FLATLAND if args.cache or args.data == "flatland" else Path(args.data).name,
    )
    dcfg = DiTTrainConfig(cpu_bf16=args.bf16)
    train_dit(out, cfg, tcfg, source, dcfg, base=base, compile=args.compile, fsdp=args.fsdp)
    print(f"trained transformer in {args.out}")
    return 0


def _adapting(args: argparse.Namespace):
    """What adapting a trained model (lora, finetune) starts from: (model directory, its
    config, the clips of --data, a source encoding them with that model's encoders)."""
    from pathlib import Path

    from nanosora import modeldir
    from nanosora.model import default_model_path
    from nanosora.training import cache, data

    model_dir = Path(args.model) if args.model else default_model_path()
    cfg = modeldir.read_config(model_dir)  # a missing or broken base, by name, before the data
    clips = data.make_source(args.data, for_text=True)
    source = cache.OnTheFly(
        modeldir.load_vae(model_dir),
        clips,
        text_encoder=cfg.text.encoder,
        sentence_tokens=cfg.text.sentence_tokens,
    )
    return model_dir, cfg, clips, source


def cmd_train_lora(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nanosora.networks import lora
    from nanosora.training.train_dit import DiTTrainConfig
    from nanosora.training.train_lora import train_lora

    settings = lora.LoraSettings(args.rank, args.alpha or float(args.rank), tuple(args.targets))
    settings.validate()
    model_dir, _, _, source = _adapting(args)
    tcfg = _train_config(args, warmup=50)
    f = train_lora(
        args.out,
        model_dir,
        settings,
        tcfg,
        source,
        DiTTrainConfig(cpu_bf16=args.bf16),
        data_name=Path(args.data).name,
    )
    print(f"trained adapter: {f} (use it with --lora {args.out})")
    return 0


def cmd_train_finetune(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from nanosora import vocabulary
    from nanosora.training.train_dit import DiTTrainConfig, train_dit

    model_dir, cfg, clips, source = _adapting(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if model_dir.resolve() != out.resolve():
        shutil.copyfile(model_dir / "vae.safetensors", out / "vae.safetensors")
    # the words it knows: the base model's and those of the new captions
    words = vocabulary.of_captions([*cfg.vocabulary, *getattr(clips, "captions", {}).values()])
    base = dataclasses.replace(cfg, name=out.name, trained_on=Path(args.data).name, vocabulary=words)
    tcfg = _train_config(args, warmup=50)
    train_dit(out, cfg.dit, tcfg, source, DiTTrainConfig(cpu_bf16=args.bf16), base=base, init=model_dir)
    print(f"fine-tuned model directory: {out} (use it with --model {out})")
    return 0


def cmd_train_distill(args: argparse.Namespace) -> int:
    from nanosora import modeldir
    from nanosora.training import cache
    from nanosora.training.distill import DistillConfig, train_distill

    modeldir.read_config(args.teacher)  # a missing or broken teacher, by name, before the cache
    tcfg = _train_config(args, warmup=50)
    source = cache.LatentCache(args.cache)
    train_distill(args.out, args.teacher, tcfg, source, DistillConfig(cpu_bf16=args.bf16))
    print(f"guidance-distilled model directory: {args.out}")
    return 0


def cmd_train_recipe(args: argparse.Namespace) -> int:
    from nanosora.training import recipe

    if not args.preset or not args.out:
        raise ValueError(
            "give --preset and --out to train a whole model, or name a network: `train vae` or `train dit`"
        )
    model = recipe.run(args.preset, args.out)
    print(f"trained model directory: {model} (use it with --model {model})")
    return 0


def cmd_train_vae(args: argparse.Namespace) -> int:
    from nanosora.config import VAE_PRESETS
    from nanosora.training import data
    from nanosora.training.train_vae import train_vae

    source = data.make_source(args.data)
    tcfg = _train_config(args, warmup=100)
    train_vae(args.out, VAE_PRESETS[args.preset], tcfg, source, cpu_bf16=args.bf16)
    print(f"trained autoencoder in {args.out} (config.json, vae.safetensors; log.jsonl, loss.png)")
    return 0


def add_cache(sub, positive_int) -> None:
    c = sub.add_parser(
        "cache",
        help="encode a data set once into safetensors shards of latents and text embeddings",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  nanosora cache --model runs/vae --out cache/flatland --n 20000\n"
        "  nanosora cache --model runs/vae --data my_clips/ --out cache/mine\n"
        "  torchrun --nproc-per-node 2 -m nanosora cache --model runs/vae --out cache/flatland --n 20000",
    )
    c.add_argument("--model", required=True, help="model directory holding the autoencoder")
    c.add_argument("--out", required=True, help="folder for the shards")
    c.add_argument("--data", default="flatland", help="'flatland' (default) or a folder of .mp4 files")
    c.add_argument("--n", type=positive_int, default=1000, help="clips to encode (default 1000)")
    c.add_argument("--shard-size", type=positive_int, default=1000, help="clips per shard (default 1000)")
    c.add_argument("--text-encoder", default="minilm", help="'minilm' (default) or a local model folder")
    c.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    c.add_argument(
        "--include-held-out",
        action="store_true",
        help="also sample the colour-shape-motion combinations the world benchmark holds out",
    )
    c.set_defaults(func=cmd_cache)


def cmd_cache(args: argparse.Namespace) -> int:
    from nanosora import modeldir
    from nanosora.training import cache, data
    from nanosora.world.heldout import exclusions

    vae = modeldir.load_vae(args.model)
    source = data.make_source(
        args.data, exclude=None if args.include_held_out else exclusions(), for_text=True
    )
    written = cache.build(
        args.out,
        vae,
        source,
        n=args.n,
        shard_size=args.shard_size,
        text_encoder=args.text_encoder,
        seed=args.seed,
    )
    print(f"wrote {len(written)} shard(s) to {args.out}", file=sys.stderr)
    return 0
