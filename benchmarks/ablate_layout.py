"""World model v3: does an explicit layout bind each object to its words?

Every arm fine-tunes the shipped transformer on the same latent cache (the shipped
autoencoder's, with each clip's per-object boxes: world.layout) by the binding stage
(train_binding: batch 32, lr 2e-4) for as many steps as fit in `--minutes` of its own
measured step time. The arms differ only in the objective:

- control: the shipped objective, so that what the other gains is not just more training;
- layout: each object's caption sentence, through a zero-initialised projection, added to
  the tokens its box covers (layout.py), dropped for a fifth of the rows; at generation the
  boxes come from the learned planner (planner.py), trained first (`planner`, else the
  shipped model's), never from the world's parser or physics. Since round 7 the shipped
  model reads layouts, so this is the control on the shipped objective;
- ground: layout plus the grounding losses (grounding.py; --ground-cross, --ground-self);
- objects: layout with the flow loss weighted 1 + --object-weight inside the objects' true
  boxes (grounding.object_weight), for corners and shapes that the background outweighs;
- whole, bound, bound_self (round 11): the shipped stage's objective (layout plus the
  cross-attention grounding term at --ground-cross, no self term) trained with whole
  attention (the control: how the shipped weights were trained), with regional
  cross-attention (DiTConfig.regions, as the shipped model samples), or with regional cross-
  and self-attention (regions_self). All three are judged sampling with both bounds on (the
  best sampling of round 11's first measurement).

Each is judged on the validation split only (other prompts and seeds than the benchmark's),
every suite; `--judge DIR` judges a model directory as it is (the shipped baseline).

    python benchmarks/ablate_layout.py --cache runs/cache_layout --out runs/layout \\
        --minutes 20 --json benchmarks/reported/v3_layout.json planner control layout
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from common import recorder

ARMS = ("control", "layout", "ground", "objects", "whole", "bound", "bound_self")
# round 11's arms: the transformer's attention bounds in training, (regions, regions_self)
BOUNDS = {"whole": (False, False), "bound": (True, False), "bound_self": (True, True)}


def with_bounds(model: Path, out: Path, regions: bool, regions_self: bool) -> Path:
    """A copy of model directory `model` in `out` whose transformer bounds attention as asked
    (config.json only; the weights are the same)."""
    import shutil

    from nanosora import modeldir

    if Path(model).resolve() != Path(out).resolve():
        shutil.copytree(model, out, dirs_exist_ok=True)
    cfg = modeldir.read_config(out)
    dit = dataclasses.replace(cfg.dit, regions=regions, regions_self=regions_self)
    modeldir.write_config(out, dataclasses.replace(cfg, dit=dit))
    return out


def judge(model_dir: Path, n: int, long_n: int, oracle: bool = False) -> dict:
    from nanosora.evaluation import evaluate
    from nanosora.model import load

    m = load(model_dir)
    if oracle:
        oracle_plans(m)
    long = ["long_10s", "long_60s", "shots"]
    short = [s for s in evaluate.SUITE_NAMES if s not in long]
    res = evaluate.run(m, short, n=n, progress=False, validation=True)
    res |= evaluate.run(m, long, n=long_n, progress=False, validation=True)
    return {k: {kk: vv for kk, vv in r.items() if kk != "cases"} for k, r in res.items()}


def judge_text_only(model_dir: Path, n: int) -> dict:
    """A layout model with its planner off: does the text-only path still hold?"""
    from nanosora.evaluation import evaluate
    from nanosora.model import load

    m = load(model_dir)
    m.planner = None
    res = evaluate.run(m, ["single", "held_out"], n=n, progress=False, validation=True)
    return {k: {kk: vv for kk, vv in r.items() if kk != "cases"} for k, r in res.items()}


def oracle_plans(m) -> None:
    """Make a layout model read Flatland's true layouts instead of its planner's: every
    detailed caption the expander writes is remembered with its scene, and the model's plan
    of that caption is the scene's exact boxes. A measurement of the renderer alone (how much
    of a layout model's score the planner loses); generation itself never does this."""
    from nanosora.networks.planner import Plan
    from nanosora.networks.text import sentences
    from nanosora.world import caption as world_caption
    from nanosora.world.layout import object_sentences, scene_boxes

    scenes: dict[str, tuple] = {}
    write = world_caption.detailed_caption

    def remember(scene, seconds, *a, **k):
        text = write(scene, seconds, *a, **k)
        scenes[text] = (scene, seconds)
        return text

    world_caption.detailed_caption = remember
    planned = m.plan

    def plan(caption: str, aspect: float, seconds: float):
        if caption not in scenes:
            return planned(caption, aspect, seconds)
        scene, secs = scenes[caption]
        parts = sentences(caption)
        words = [parts[i] for i in object_sentences(parts)]
        emb = m.text_encoder.sentence_embeddings(words)
        return Plan(words, emb, lambda t: scene_boxes(scene, t, secs).astype("float32"))

    m.plan = plan


SUITE_LABELS = {
    "single": "single", "two_objects": "two", "three_objects": "three", "held_out": "held-out",
    "paraphrases": "para", "wide_tall": "wide/tall", "backgrounds": "bg", "physics": "physics",
    "long_10s": "10 s", "long_60s": "60 s", "shots": "shots",
}  # fmt: skip


def table(results: dict) -> str:
    """The results as a markdown table: clips passed per suite, and over all suites clips and
    checks passed."""
    head = "| model | steps | " + " | ".join(SUITE_LABELS.values()) + " | clips | checks |"
    lines = [head, "|" + "---|" * (len(SUITE_LABELS) + 4)]
    for name, row in results.items():
        v = row.get("validation", {}) if isinstance(row, dict) else {}  # not the protocol's note
        if "single" not in v or "two_objects" not in v:
            continue
        cells = [f"{v[s]['passed']}/{v[s]['total']}" if s in v else "" for s in SUITE_LABELS]
        passed, total = sum(r["passed"] for r in v.values()), sum(r["total"] for r in v.values())
        checks = sum(r["checks_passed"] for r in v.values()) / sum(r["checks"] for r in v.values())
        steps = f"{row['steps']:,}" if "steps" in row else "-"
        lines.append(f"| {name} | {steps} | " + " | ".join(cells) + f" | {passed}/{total} | {checks:.1%} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("arms", nargs="*", help=f"what to train and judge, in order: planner, {', '.join(ARMS)}")
    ap.add_argument("--cache", help="latent cache with layouts (the shipped autoencoder's)")
    ap.add_argument("--out", required=True, help="folder for the runs")
    ap.add_argument("--minutes", type=float, default=20.0, help="training budget of each arm")
    ap.add_argument("--n", type=int, default=16, help="validation prompts per short suite")
    ap.add_argument("--long-n", type=int, default=8, help="validation prompts per long suite")
    ap.add_argument("--json", required=True, help="write the results here (merged with what it holds)")
    ap.add_argument("--steps", type=int, help="train this many steps instead (a smoke test)")
    ap.add_argument(
        "--match",
        metavar="ARM=STEPS",
        help="the control, judged in an earlier run, trained STEPS steps as ARM: give each arm the "
        "same minutes, STEPS x (ARM's step time / its own), both measured now side by side, so "
        "that a machine faster or slower than on that day does not change the budget",
    )
    ap.add_argument("--judge", nargs="*", default=[], help="judge these model directories as they are")
    ap.add_argument("--no-compile", action="store_true", help="train uncompiled")
    ap.add_argument(
        "--oracle", nargs="*", default=[], help="judge these layout models given the true layouts"
    )
    ap.add_argument(
        "--ground-cross", type=float, default=0.05, help="the ground arm's cross-attention weight"
    )
    ap.add_argument("--ground-self", type=float, default=0.5, help="the ground arm's self-attention weight")
    ap.add_argument(
        "--object-weight", type=float, default=4.0, help="the objects arm's extra weight inside boxes"
    )
    ap.add_argument("--table", action="store_true", help="print --json's results as a markdown table")
    ap.add_argument(
        "--text-only",
        nargs="*",
        default=[],
        help="judge these layout models with their planner off (the single and held-out suites)",
    )
    args = ap.parse_args()
    unknown = set(args.arms) - {"planner", *ARMS}
    if unknown:
        ap.error(f"unknown arm(s) {sorted(unknown)}: choose from planner, {', '.join(ARMS)}")
    if args.table:
        print(table(json.loads(Path(args.json).read_text())))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = recorder(args.json)

    from nanosora import device
    from nanosora.model import default_model_path
    from nanosora.modeldir import read_config
    from nanosora.networks.text import TextEncoder
    from nanosora.training.train_binding import BindingConfig, objective, train_binding, train_planner_into
    from nanosora.training.train_dit import step_seconds

    shipped = default_model_path()
    base = read_config(shipped)
    bf16 = device.cpu_has_bf16()
    compile = not args.no_compile and device.can_compile(device.device())
    b = BindingConfig()
    grounded = dataclasses.replace(b, ground_cross=args.ground_cross, ground_self=args.ground_self)

    weighted = dataclasses.replace(b, object_weight=args.object_weight)

    cross_only = dataclasses.replace(b, ground_cross=args.ground_cross)

    def arm_config(arm: str) -> BindingConfig:
        return {"ground": grounded, "objects": weighted, **dict.fromkeys(BOUNDS, cross_only)}.get(arm, b)

    def arm_dit(arm: str):
        layout = arm != "control"  # a control without layouts has no regions to bound by
        regions, regions_self = BOUNDS.get(arm, (base.dit.regions, base.dit.regions_self))
        return dataclasses.replace(
            base.dit, layout=layout, regions=layout and regions, regions_self=layout and regions_self
        )

    if "planner" in args.arms:
        t0 = time.perf_counter()
        (out / "planner").mkdir(exist_ok=True)
        path = train_planner_into(out / "planner", b, TextEncoder.of(base.text))
        row = {
            "scenes": b.planner_scenes,
            "steps": b.planner_steps,
            "minutes": round((time.perf_counter() - t0) / 60, 2),
        }
        row["validation"] = planner_accuracy(path, base)
        record("planner", row)
    for d in args.text_only:
        record(f"text only: {d}", {"validation": judge_text_only(Path(d), args.n)})
    for d in args.oracle:
        record(f"true layouts: {d}", {"validation": judge(Path(d), args.n, args.long_n, oracle=True)})
    arms = [a for a in args.arms if a in ARMS]
    if not arms:
        for d in args.judge:
            record(f"as is: {d}", {"validation": judge(Path(d), args.n, args.long_n)})
        return
    from nanosora.training.cache import LatentCache

    source = LatentCache(args.cache)
    times = {}
    ref, ref_steps = None, 0
    if args.match:
        ref, _, n = args.match.partition("=")
        if ref not in ARMS or not n.isdigit():
            ap.error(f"--match {args.match!r}: use ARM=STEPS with ARM one of {', '.join(ARMS)}")
        ref_steps = int(n)
    if not args.steps:  # in turns, in one process, before any training
        for arm in ([ref] if ref and ref not in arms else []) + arms:
            cfg = arm_dit(arm)
            times[arm] = step_seconds(
                cfg, source, b.batch, objective(arm_config(arm), bf16), compile=compile, steps=24
            )
            print(f"{arm}: {times[arm]:.3f} s per step", flush=True)
    for arm in arms:
        if args.match and not args.steps:
            steps = round(ref_steps * times[ref] / times[arm])
        else:
            steps = args.steps or int(args.minutes * 60 / times[arm])
        t0 = time.perf_counter()
        run = out / f"run_{arm}"
        planner = out / "planner" / "planner.safetensors"
        if not planner.exists():
            planner = shipped / "planner.safetensors"
        start = shipped
        if arm in BOUNDS:
            start = with_bounds(shipped, out / f"start_{arm}", *BOUNDS[arm])
        train_binding(
            start,
            run,
            source,
            dataclasses.replace(arm_config(arm), steps=steps),
            bf16,
            compile,
            planner=planner if arm != "control" else None,
            layout=arm != "control",
        )
        took = time.perf_counter() - t0
        row = {
            "steps": steps,
            "step_seconds": round(times.get(arm, took / steps), 4),
            "train_minutes": round(took / 60, 2),
            "bf16": bf16,
        }
        if args.match:
            row["matched"] = {"arm": ref, "steps": ref_steps, "step_seconds": round(times[ref], 4)}
        if arm in BOUNDS:  # judged with both bounds on, however it trained
            with_bounds(run, run, True, True)
            row["ground"] = {"cross": args.ground_cross, "self": 0.0}
            row["trained_bounds"] = dict(zip(("regions", "regions_self"), BOUNDS[arm], strict=True))
        if arm == "ground":
            row["ground"] = {"cross": args.ground_cross, "self": args.ground_self}
        if arm == "objects":
            row["object_weight"] = args.object_weight
        row["validation"] = judge(run, args.n, args.long_n)
        record(arm, row)
    for d in args.judge:
        record(f"as is: {d}", {"validation": judge(Path(d), args.n, args.long_n)})


def planner_accuracy(path: Path, base) -> dict:
    """The planner on captions of scenes it never saw (another seed)."""
    from nanosora.modeldir import load_weights
    from nanosora.networks.planner import PLANNER_PRESETS, Planner
    from nanosora.networks.text import TextEncoder
    from nanosora.training.train_planner import accuracy, make_data
    from nanosora.world.heldout import exclusions

    planner = load_weights(path, Planner(PLANNER_PRESETS["default"])).eval()
    data = make_data(500, TextEncoder.of(base.text), seed=12345, exclude=exclusions(), progress=False)
    return accuracy(planner, data)


if __name__ == "__main__":
    main()
