"""World model v2: transformer designs compared at an equal training budget.

Every variant trains on the same latent cache (the same autoencoder, clips and captions),
with the recipe's optimiser, schedule, bf16 autocast and compiling, for as many steps as
fit in `--minutes` of its own measured step time. The step time of every variant is
measured first, in turns in one process, so that the budget does not depend on what else
the machine was doing while a run trained. Each trained transformer (EMA weights) is then
judged on held-apart data only:

- the validation split of the world benchmark (`nanosora eval --validation`: other
  prompts and seeds than the benchmark's), pass rate, checks and strict integrity;
- the flow-matching loss on a validation cache (clips never trained on) at fixed times and
  fixed noise, comparable across designs because they share the latents.

    python benchmarks/ablate_v2.py --cache runs/abl/cache --val-cache runs/abl/val \\
        --out runs/abl --minutes 15 --json benchmarks/reported/ablation_v2.json A C D

Variants are defined in VARIANTS below; `--time-only` measures step times and stops.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import time
from pathlib import Path

import torch

SUITES = ["single", "two_objects", "three_objects", "held_out", "paraphrases", "wide_tall"]
VAL_TIMES = (0.1, 0.3, 0.5, 0.7, 0.9)


@dataclasses.dataclass(frozen=True)
class Variant:
    what: str
    dit: dict  # changes to the default DiT preset
    sentence_tokens: bool = False


VARIANTS = {
    "A": Variant("shipped design: 2x2 patches (4x4 tokens a frame), width 192", {}),
    "B": Variant(
        "1x1 patches (8x8 tokens a frame), width 192, blocks 1-4 routed (half the tokens)",
        {"patch": (1, 1, 1), "route": (1, 5)},
    ),
    "C": Variant(
        "1x1 patches, width 128 (2 heads), blocks 1-4 routed",
        {"patch": (1, 1, 1), "dim": 128, "heads": 2, "route": (1, 5)},
    ),
    "D": Variant(
        "C with a token per caption sentence",
        {"patch": (1, 1, 1), "dim": 128, "heads": 2, "route": (1, 5)},
        sentence_tokens=True,
    ),
    "E": Variant("A with a token per caption sentence", {}, sentence_tokens=True),
    "F": Variant(
        "1x1 patches, width 128, no routing",
        {"patch": (1, 1, 1), "dim": 128, "heads": 2},
    ),
}


def dit_config(v: Variant, source):
    from nanosora.networks.dit import DIT_PRESETS

    base = dataclasses.replace(
        DIT_PRESETS["default"], latent_channels=source.latent_channels, text_dim=source.text_dim
    )
    return dataclasses.replace(base, **v.dit)


def with_sentence_tokens(cache_dir: Path, out: Path) -> Path:
    """A copy of a cache whose captions are encoded again with a token per sentence (the
    latents are the same tensors): what `cache.build(sentence_tokens=True)` would write."""
    import json as _json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from nanosora.atomic import atomic_path
    from nanosora.networks.text import TextEncoder
    from nanosora.training.cache import _pad_half

    out.mkdir(parents=True, exist_ok=True)
    enc = TextEncoder(sentence_tokens=True)
    for f in sorted(Path(cache_dir).glob("shard-*.safetensors")):
        if (out / f.name).exists():
            continue
        with safe_open(str(f), "pt") as st:
            t = {k: st.get_tensor(k) for k in st.keys()}  # noqa: SIM118
            meta = dict(st.metadata())
        text, mask = _pad_half(enc.encode_tokens(_json.loads(meta["captions"])))
        t["text"], t["text_mask"] = text, mask
        t["null_text"] = enc.encode_tokens([""])[0].half()
        meta["sentence_tokens"] = "true"
        with atomic_path(out / f.name) as tmp:
            save_file(t, str(tmp), metadata=meta)
    return out


def train_variant(name: str, v: Variant, source, steps: int, out: Path) -> Path:
    from nanosora import modelconfig, modeldir
    from nanosora.model import default_model_path
    from nanosora.training import cache, train
    from nanosora.training.train_dit import DiTTrainConfig, train_dit

    torch._dynamo.reset()  # each variant compiles afresh (the cache is shared by all DiTs)
    run = out / f"run_{name}"
    run.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(default_model_path() / "vae.safetensors", run / "vae.safetensors")
    base = modelconfig.build(
        modeldir.read_config(default_model_path()).vae,
        text=cache.text_config(source),
        name=f"ablation-{name}",
        window=cache.WINDOW,
    )
    tcfg = train.TrainConfig(
        steps=steps, batch=32, lr=1e-3, warmup=min(250, steps // 10 + 1), ckpt_every=250, seed=0
    )
    train_dit(
        run, dit_config(v, source), tcfg, source, DiTTrainConfig(cpu_bf16=True),
        base=base, progress=False, compile=True,
    )  # fmt: skip
    return run


@torch.no_grad()
def val_loss(run: Path, val, clips: int = 128) -> dict:
    """Flow-matching loss of the EMA weights on (the first `clips` of each bucket of) the
    validation cache, at fixed times and noise, text to video (no given frames)."""
    from nanosora import modeldir
    from nanosora.generation import flow

    dit = modeldir.load_dit(run).eval()
    out = {}
    for t in VAL_TIMES:
        total, count = 0.0, 0
        for gi, g in enumerate(val.groups):
            for s in range(0, min(clips, len(g.latents)), 32):
                x0 = g.latents[s : s + 32]
                noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1000 * gi + s))
                x_t, target = flow.noisy(x0, noise, torch.full((len(x0),), t))
                w = max(1, int(g.mask[s : s + 32].sum(1).max()))
                pred = dit(
                    x_t, torch.full((len(x0),), t), g.text[s : s + 32, :w].float(), g.mask[s : s + 32, :w]
                )
                total += float(flow.velocity_loss(pred, target)) * len(x0)
                count += len(x0)
        out[f"{t:g}"] = round(total / count, 4)
    out["mean"] = round(sum(out.values()) / len(VAL_TIMES), 4)
    return out


def raw_model(run: Path) -> Path:
    """The run's final raw (not averaged) weights as a model directory, run/raw. A run of a
    few hundred steps has an EMA (decay 0.999) that still holds a large share of the
    initial weights (0.999^800 = 45%), which would judge the EMA's lag, not the design."""
    from nanosora import modeldir
    from nanosora.training import checkpoint

    raw = run / "raw"
    raw.mkdir(exist_ok=True)
    newest = sorted((run / "checkpoints").glob("ckpt-*.pt"))[-1]
    dit = modeldir.load_dit(run)
    dit.load_state_dict(checkpoint.load(newest)["model"], strict=True)
    modeldir.write_config(raw, modeldir.read_config(run))
    shutil.copyfile(run / "vae.safetensors", raw / "vae.safetensors")
    modeldir.save_weights(raw / "dit.safetensors", dit)
    return raw


def world(run: Path, n: int) -> dict:
    from nanosora.evaluation import evaluate
    from nanosora.model import load

    res = evaluate.run(load(run), SUITES, n=n, progress=False, validation=True)
    return {k: {kk: vv for kk, vv in r.items() if kk != "cases"} for k, r in res.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+", choices=sorted(VARIANTS))
    ap.add_argument("--cache", required=True, help="latent cache to train on (word tokens only)")
    ap.add_argument("--val-cache", required=True, help="latent cache of held-apart clips, for the loss")
    ap.add_argument("--out", required=True, help="folder for the runs")
    ap.add_argument("--minutes", type=float, default=15.0, help="training budget of each variant")
    ap.add_argument("--n", type=int, default=32, help="validation prompts per suite")
    ap.add_argument("--json", help="write the results here (merged with what it already holds)")
    ap.add_argument("--time-only", action="store_true", help="measure step times and stop")
    ap.add_argument("--steps", type=int, help="train this many steps instead (a smoke test)")
    ap.add_argument(
        "--raw", action="store_true", help="judge the trained runs' raw final weights (no training)"
    )
    ap.add_argument("--train-only", action="store_true", help="train and record, judge later with --raw")
    args = ap.parse_args()

    from nanosora.training.cache import LatentCache
    from nanosora.training.train_dit import DiTTrainConfig, step_seconds

    out = Path(args.out)
    caches = {False: Path(args.cache), True: None}
    vals = {False: Path(args.val_cache), True: None}
    if any(VARIANTS[v].sentence_tokens for v in args.variants):
        caches[True] = with_sentence_tokens(caches[False], out / "cache_sentences")
        vals[True] = with_sentence_tokens(vals[False], out / "val_sentences")
    loaded = {k: LatentCache(p) for k, p in caches.items() if p is not None}
    if args.raw:
        results = json.loads(Path(args.json).read_text())
        for name in args.variants:
            raw = raw_model(out / f"run_{name}")
            v = VARIANTS[name]
            row = {
                "val_loss": val_loss(raw, LatentCache(vals[v.sentence_tokens])),
                "world_validation": world(raw, args.n),
            }
            w = row["world_validation"]
            row["clips_passed"] = sum(r["passed"] for r in w.values())
            if name not in results:  # trained, but its EMA weights were never judged
                steps = int(sorted((out / f"run_{name}" / "checkpoints").glob("ckpt-*.pt"))[-1].stem[5:])
                results[name] = {"what": v.what, "steps": steps, "clips": sum(r["total"] for r in w.values())}
            results[name].setdefault("clips", sum(r["total"] for r in w.values()))
            results[name]["raw"] = row
            print(json.dumps({name: row}), flush=True)
            Path(args.json).write_text(json.dumps(results, indent=2))
        print(table({k: {**r, **r["raw"]} for k, r in results.items() if "raw" in r}))
        return

    times = {}
    # in turns, in one process, before any training (not with --steps: a count given outright,
    # for example the one an earlier invocation measured for the same budget)
    for rnd in range(0 if args.steps else 1):
        for name in args.variants:
            v = VARIANTS[name]
            src = loaded[v.sentence_tokens]
            s = step_seconds(
                dit_config(v, src), src, 32, DiTTrainConfig(cpu_bf16=True), compile=True, steps=30
            )
            times[name] = min(s, times.get(name, s))
            print(f"{name} (round {rnd + 1}): {s:.3f} s per step ({v.what})", flush=True)
    if args.time_only:
        return

    results = json.loads(Path(args.json).read_text()) if args.json and Path(args.json).exists() else {}
    for name in args.variants:
        v = VARIANTS[name]
        src = loaded[v.sentence_tokens]
        steps = args.steps or int(args.minutes * 60 / times[name])
        t0 = time.perf_counter()
        run = train_variant(name, v, src, steps, out)
        took = time.perf_counter() - t0
        cfg = dit_config(v, src)
        from nanosora.networks.dit import count_params

        row = {
            "what": v.what,
            "dit": {k: list(x) if isinstance(x, tuple) else x for k, x in v.dit.items()},
            "sentence_tokens": v.sentence_tokens,
            "params": count_params(cfg),
            "tokens_per_clip": 5 * 64 // math.prod(cfg.patch[1:]),
            "step_s": round(times[name], 4) if name in times else None,
            "steps": steps,
            "budget_min": args.minutes,
            "train_wall_min": round(took / 60, 1),
        }
        if not args.train_only:
            row["val_loss"] = val_loss(run, LatentCache(vals[v.sentence_tokens]))
            row["world_validation"] = w = world(run, args.n)
            row["clips_passed"] = sum(r["passed"] for r in w.values())
            row["clips"] = sum(r["total"] for r in w.values())
        results[name] = row
        print(json.dumps({name: row}), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    if not args.train_only:
        print(table(results))


def table(results: dict) -> str:
    lines = [
        "| variant | design | steps | val loss | clips passed | " + " | ".join(SUITES) + " | whole |",
        "|---|---|---|---|---|" + "---|" * len(SUITES) + "---|",
    ]
    for name, r in results.items():
        w = r["world_validation"]
        whole = sum(s["integrity"] * s["total"] for s in w.values()) / max(1, r["clips"])
        lines.append(
            f"| {name} | {r['what']} | {r['steps']} | {r['val_loss']['mean']:.4f} | "
            f"{r['clips_passed']}/{r['clips']} | "
            + " | ".join(f"{w[s]['passed']}/{w[s]['total']}" for s in SUITES)
            + f" | {whole:.1%} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
