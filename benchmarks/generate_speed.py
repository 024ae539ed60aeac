"""End-to-end generation: speed, memory and cost curves, side by side with diffusers.

1. The default clip (17 frames at 64x64, 2 s, default settings: 20 Euler steps, guidance 8
   until t = 0.45) with the shipped model: generation wall time (median of 7, timed in turns
   with the jobs below; model load reported apart) and the real-time factor, generation time
   over clip duration. Target: <= 0.5.
2. The same job through diffusers' WanPipeline built with a transformer matched to ours
   (width, depth, heads, MLP, patch, text width), an AutoencoderKLWan with at most our
   autoencoder's parameters, the same steps, guidance and latent shape, and our prompt
   embeddings (random weights: this compares speed). Target: nanosora >= 3x faster.
3. Peak RSS of a whole generation (load included) in a fresh process per clip: the default
   clip (target <= 1 GB), and 10, 30 and 60 s clips (target: constant).
4. Cost curves: time and memory against duration (2-60 s at 64x64) and resolution (64-256
   px at 2 s), written as a plot.

    python benchmarks/generate_speed.py [--model DIR] [--json OUT] [--plot PNG] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from common import in_child, params, peak_rss_mb, wan_transformer_like, wan_vae_at_most

from nanosora.config import DEFAULT_GUIDANCE, DEFAULT_STEPS
from nanosora.plan import median_times

PROMPT = "a red circle moves right"
# medians of 7, timed in turns (plan.median_times): these jobs take a few tenths of a second,
# and on this shared machine back-to-back series of them varied by tens of percent
REPEATS = 7


def child(model_dir: str | None, seconds: float, width: int, height: int) -> None:
    """In a fresh process: load, generate once, print time and peak RSS as JSON."""
    from nanosora.model import load

    t = time.perf_counter()
    model = load(model_dir)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    v = model.generate(PROMPT, seconds=seconds, width=width, height=height, seed=0)
    gen_s = time.perf_counter() - t
    print(json.dumps({"load_s": load_s, "gen_s": gen_s, "frames": len(v.frames), "rss_mb": peak_rss_mb()}))


def wan_pipeline(model, steps: int, guidance: float, bf16: bool = False):
    """The default clip through WanPipeline at matched sizes (random weights), as a callable,
    and its sizes; `bf16`: the whole pipeline under CPU bf16 autocast, to set beside our --bf16."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline

    torch.manual_seed(0)
    base, vae = wan_vae_at_most(params(model.vae))
    pipe = WanPipeline(
        tokenizer=None,
        text_encoder=None,
        vae=vae.eval(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
        transformer=wan_transformer_like(model.dit.cfg).eval(),
    )
    pipe.set_progress_bar_config(disable=True)
    text, _ = model.encode_text([PROMPT])
    null, _ = model.encode_text([""])
    null = torch.nn.functional.pad(null, (0, 0, 0, text.shape[1] - null.shape[1]))

    def run():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = pipe(
                prompt_embeds=text,
                negative_prompt_embeds=null,
                height=64,
                width=64,
                num_frames=17,
                num_inference_steps=steps,
                guidance_scale=guidance,
                output_type="np",
            ).frames
        assert out.shape[1:4] == (17, 64, 64), out.shape

    info = {
        "wan_vae_base_dim": base,
        "wan_vae_params": params(vae),
        "wan_transformer_params": params(pipe.transformer),
    }
    return run, info


def measure(model_dir: str | None = None, quick: bool = False, plot: str | None = None) -> dict:
    from nanosora.device import cpu_has_bf16
    from nanosora.model import load

    t = time.perf_counter()
    model = load(model_dir)
    load_s = time.perf_counter() - t

    def ours(m, **kw):
        def run():
            with torch.inference_mode():
                m.generate(PROMPT, seconds=2, seed=0, **kw)

        return run

    wan, wan_info = wan_pipeline(model, DEFAULT_STEPS, DEFAULT_GUIDANCE)
    jobs = {"default": ours(model), "wan": wan}
    # the faster paths: int8 linear layers, bf16 (where the CPU has it), torch.compile (compile
    # time excluded: it happens in the warm-up), fewer steps; and, beside them, two passes on
    # every step as WanPipeline does it (--guidance-until 0, and two passes with a guidance-
    # distilled model): the like-for-like algorithm
    bf16 = cpu_has_bf16()
    paths = [
        ("int8", {"int8": True}, {}),
        ("compile", {"compile": True}, {}),
        ("steps_6", {}, {"steps": 6, "guidance": 4.0}),
        ("guide_every_step", {}, {"guidance_until": 0.0, "one_pass_guidance": False}),
        # one pass on every step: the bound of any scheme that makes guidance cheaper (at
        # matched steps and per-call speed, what remains is the passes)
        ("no_guidance", {}, {"guidance": 1.0}),
    ]
    if bf16:
        paths.insert(1, ("bf16", {"bf16": True}, {}))
        # like for like in bf16: our --bf16 against WanPipeline under bf16 autocast
        jobs["wan_bf16"] = wan_pipeline(model, DEFAULT_STEPS, DEFAULT_GUIDANCE, bf16=True)[0]
    for name, kw, gen_kw in paths:
        jobs[name] = ours(load(model_dir, **kw) if kw else model, **gen_kw)
    times = median_times(jobs, REPEATS, warmup=2)
    gen_s, wan_s = times["default"], times["wan"]
    variants = {name: times[name] for name, _, _ in paths}
    wan_bf16_s = times.get("wan_bf16")

    durations = (2, 10) if quick else (2, 10, 30, 60)
    sides = (64, 128) if quick else (64, 128, 256)
    script = str(Path(__file__).resolve())
    by_duration = {s: in_child(script, str(model_dir or ""), str(s), "64", "64") for s in durations}
    by_side = {p: in_child(script, str(model_dir or ""), "2", str(p), str(p)) for p in sides}
    result = {
        "model": str(model.path),
        "threads": torch.get_num_threads(),
        "load_s": round(load_s, 3),
        "default_clip_s": round(gen_s, 3),
        "realtime_factor": round(gen_s / 2.0, 3),
        "wan_pipeline_s": round(wan_s, 3),
        "faster_paths_s": {k: round(v, 3) for k, v in variants.items()},
        "vs_diffusers_speedup": round(wan_s / gen_s, 2),
        "guidance_passes": model.guidance_passes(DEFAULT_GUIDANCE),
        "vs_diffusers_speedup_guiding_every_step": round(wan_s / variants["guide_every_step"], 2),
        "vs_diffusers_speedup_without_guidance": round(wan_s / variants["no_guidance"], 2),
        **wan_info,
        "peak_rss_mb": round(by_duration[2]["rss_mb"], 1),
        "by_duration": {
            f"{s}s": {"gen_s": round(r["gen_s"], 2), "rss_mb": round(r["rss_mb"], 1)}
            for s, r in by_duration.items()
        },
        "by_side": {
            f"{p}x{p}": {"gen_s": round(r["gen_s"], 2), "rss_mb": round(r["rss_mb"], 1)}
            for p, r in by_side.items()
        },
    }
    if bf16:
        result["wan_pipeline_bf16_s"] = round(wan_bf16_s, 3)
        result["vs_diffusers_speedup_bf16"] = round(wan_bf16_s / variants["bf16"], 2)
    if plot:
        _plot(result, plot)
    return result


def _plot(r: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    d = r["by_duration"]
    xs = [float(k[:-1]) for k in d]
    ax[0].plot(xs, [v["gen_s"] for v in d.values()], "o-", label="generation time (s)")
    ax0b = ax[0].twinx()
    ax0b.plot(xs, [v["rss_mb"] for v in d.values()], "s--", color="tab:red", label="peak RSS (MB)")
    ax0b.set_ylim(0, max(v["rss_mb"] for v in d.values()) * 1.3)
    ax[0].set(xlabel="clip duration (s), 64x64", ylabel="seconds", title="time linear, memory flat")
    ax0b.set_ylabel("MB")
    s = r["by_side"]
    xs = [int(k.split("x")[0]) for k in s]
    ax[1].plot(xs, [v["gen_s"] for v in s.values()], "o-")
    ax[1].set(xlabel="frame side (px), 2 s clip", ylabel="seconds", title="cost against resolution")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def report(r: dict) -> str:
    lines = [
        f"model load: {r['load_s']:.2f} s (apart)",
        f"default clip (17x64x64, {DEFAULT_STEPS} steps, guidance {DEFAULT_GUIDANCE:g}): "
        f"{r['default_clip_s']:.3f} s, "
        f"real-time factor {r['realtime_factor']:.3f} (target <= 0.5)",
        f"WanPipeline, matched sizes: {r['wan_pipeline_s']:.3f} s -> "
        f"nanosora {r['vs_diffusers_speedup']:.1f}x faster (target >= 3x; {r['guidance_passes']} "
        f"transformer pass(es) per guided step); two passes on every step as it does: "
        f"{r['vs_diffusers_speedup_guiding_every_step']:.1f}x; with no guidance at all (the bound of "
        f"cheaper guidance): {r['vs_diffusers_speedup_without_guidance']:.1f}x",
        f"peak RSS, default clip (load included): {r['peak_rss_mb']:.0f} MB (target <= 1024)",
    ]
    if "wan_pipeline_bf16_s" in r:
        lines.append(
            f"bf16 (--bf16; WanPipeline under bf16 autocast): {r['faster_paths_s']['bf16']:.3f} s "
            f"vs {r['wan_pipeline_bf16_s']:.3f} s -> {r['vs_diffusers_speedup_bf16']:.1f}x"
        )
    base = r["default_clip_s"]
    lines += [f"  {k}: {v:.3f} s ({base / v:.2f}x)" for k, v in r["faster_paths_s"].items()]
    lines += [
        f"  {k:>5} at 64x64: {v['gen_s']:7.2f} s, {v['rss_mb']:6.0f} MB" for k, v in r["by_duration"].items()
    ]
    lines += [f"  {k:>7} 2 s: {v['gen_s']:7.2f} s, {v['rss_mb']:6.0f} MB" for k, v in r["by_side"].items()]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        model_dir, secs, w, h = sys.argv[2:6]
        child(model_dir or None, float(secs), int(w), int(h))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    ap.add_argument("--json")
    ap.add_argument("--plot", default=None, help="write the cost curves here (PNG)")
    ap.add_argument("--quick", action="store_true", help="fewer durations and sizes")
    args = ap.parse_args()
    r = measure(args.model, args.quick, args.plot)
    print(report(r))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
