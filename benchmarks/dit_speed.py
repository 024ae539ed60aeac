"""Transformer speed: a training step against this machine's matmul peak, and the forward
pass side by side with diffusers' WanTransformer3DModel at matched size.

1. Peak: the best fp32 matrix-multiply throughput torch reaches here (square matmuls).
2. Training step of the default preset on the default clip's latents (16 x 5 x 8 x 8, 80
   tokens), batch 32, 48 text tokens: FLOPs counted by torch's FlopCounterMode for the
   forward and backward pass, over the measured step time, eager and compiled
   (train dit --compile). Target: >= 60% of the peak.
3. Forward pass against WanTransformer3DModel with the same width, depth, heads, MLP width,
   patch, text width and token count (random weights). Target: >= 1.5x faster.
4. On a CPU with native bf16: the training step under bf16 autocast (train dit --bf16)
   against fp32 and against the bf16 matmul peak, and both forward passes under bf16
   autocast, side by side.

    python benchmarks/dit_speed.py [--json OUT] [--preset default] [--batch 32]
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import torch
from common import timed, wan_transformer_like
from torch.utils.flop_counter import FlopCounterMode


def measure(preset: str = "default", batch: int = 32) -> dict:
    from nanosora.device import cpu_has_bf16
    from nanosora.networks import routed
    from nanosora.networks.dit import DIT_PRESETS
    from nanosora.plan import matmul_peak
    from nanosora.training import train

    torch.manual_seed(0)
    cfg = DIT_PRESETS[preset]
    model = routed.new(cfg)
    b, L = batch, 48
    x = torch.randn(b, cfg.latent_channels, 5, 8, 8)
    t = torch.rand(b)
    text = torch.randn(b, L, cfg.text_dim)
    mask = torch.ones(b, L, dtype=torch.bool)
    opt = train.adamw(model.parameters(), train.TrainConfig(lr=1e-4))  # as train dit makes it

    def step(bf16=False, net=model):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = net(x, t, text, mask).float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with FlopCounterMode(display=False) as fc:
        model(x, t, text, mask).pow(2).mean().backward()
    opt.zero_grad(set_to_none=True)
    flops = fc.get_total_flops()
    peak = matmul_peak(repeats=5)
    t_step = timed(step, repeats=5)
    achieved = flops / t_step
    # the same step compiled (train dit --compile); compile time apart, in the warm-up runs
    compiled = torch.compile(model)
    t_step_compiled = timed(lambda: step(net=compiled), repeats=5, warmup=3)
    bf16 = cpu_has_bf16()
    if bf16:  # the same step under bf16 autocast (train dit --bf16), against the bf16 peak
        peak_bf16 = matmul_peak(bf16=True, repeats=5)
        t_step_bf16 = timed(lambda: step(True), repeats=5)

    # forward, side by side with Wan at matched size: at the training batch, and at batch 2,
    # the conditional and unconditional pass of one sampling step
    wan = wan_transformer_like(cfg).eval()
    model.eval()
    with torch.inference_mode():
        # forward FLOPs of each (counted by torch), so each forward's share of the matmul peak
        # shows how much room a faster implementation of the same sizes could have
        with FlopCounterMode(display=False) as fc:
            model(x, t, text, mask)
        f_ours = fc.get_total_flops()
        with FlopCounterMode(display=False) as fc:
            wan(x, t * 1000, text, return_dict=False)
        f_wan = fc.get_total_flops()
        t_ours = timed(lambda: model(x, t, text, mask))
        t_wan = timed(lambda: wan(x, t * 1000, text, return_dict=False)[0])
        s = slice(0, 2)
        t_ours2 = timed(lambda: model(x[s], t[s], text[s], mask[s]), repeats=21)
        t_wan2 = timed(lambda: wan(x[s], t[s] * 1000, text[s], return_dict=False)[0], repeats=21)
        if bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                t_ours_bf16 = timed(lambda: model(x, t, text, mask))
                t_wan_bf16 = timed(lambda: wan(x, t * 1000, text, return_dict=False)[0])
    n_ours = sum(p.numel() for p in model.parameters())
    n_wan = sum(p.numel() for p in wan.parameters())
    r = {
        "preset": preset,
        "config": dataclasses.asdict(cfg),
        "batch": b,
        "tokens": 80,
        "threads": torch.get_num_threads(),
        "matmul_peak_gflops": round(peak / 1e9, 1),
        "train_step_s": round(t_step, 4),
        "train_step_gflop": round(flops / 1e9, 2),
        "train_achieved_gflops": round(achieved / 1e9, 1),
        "train_flops_fraction": round(achieved / peak, 3),
        "train_step_compiled_s": round(t_step_compiled, 4),
        "train_flops_fraction_compiled": round(flops / t_step_compiled / peak, 3),
        "forward_s": round(t_ours, 4),
        "wan_forward_s": round(t_wan, 4),
        "forward_vs_diffusers_speedup": round(t_wan / t_ours, 2),
        "forward_gflop": round(f_ours / 1e9, 2),
        "wan_forward_gflop": round(f_wan / 1e9, 2),
        "forward_flops_fraction": round(f_ours / t_ours / peak, 3),
        "wan_forward_flops_fraction": round(f_wan / t_wan / peak, 3),
        "forward_b2_s": round(t_ours2, 5),
        "wan_forward_b2_s": round(t_wan2, 5),
        "forward_b2_vs_diffusers_speedup": round(t_wan2 / t_ours2, 2),
        "params": n_ours,
        "wan_params": n_wan,
    }
    if bf16:
        r["matmul_peak_bf16_gflops"] = round(peak_bf16 / 1e9, 1)
        r["train_step_bf16_s"] = round(t_step_bf16, 4)
        r["train_bf16_speedup"] = round(t_step / t_step_bf16, 2)
        r["train_bf16_fraction_of_bf16_peak"] = round(flops / t_step_bf16 / peak_bf16, 3)
        r["forward_bf16_s"] = round(t_ours_bf16, 4)
        r["wan_forward_bf16_s"] = round(t_wan_bf16, 4)
        r["forward_bf16_vs_diffusers_speedup"] = round(t_wan_bf16 / t_ours_bf16, 2)
    return r


def report(r: dict) -> str:
    text = (
        f"matmul peak (fp32): {r['matmul_peak_gflops']:.1f} GFLOP/s\n"
        f"training step, batch {r['batch']}: {r['train_step_s']:.3f} s, {r['train_step_gflop']:.1f} GFLOP, "
        f"{r['train_achieved_gflops']:.1f} GFLOP/s = {r['train_flops_fraction']:.0%} of peak "
        "(target >= 60%)\n"
        f"the same step compiled (train dit --compile): {r['train_step_compiled_s']:.3f} s = "
        f"{r['train_flops_fraction_compiled']:.0%} of peak\n"
        f"forward, batch {r['batch']}: nanosora {r['forward_s']:.4f} s ({r['params']:,} params), "
        f"WanTransformer3DModel {r['wan_forward_s']:.4f} s ({r['wan_params']:,} params): "
        f"{r['forward_vs_diffusers_speedup']:.2f}x (target >= 1.5x); {r['forward_gflop']:.1f} against "
        f"{r['wan_forward_gflop']:.1f} GFLOP, {r['forward_flops_fraction']:.0%} against "
        f"{r['wan_forward_flops_fraction']:.0%} of the matmul peak\n"
        f"forward, batch 2 (one sampling step with guidance): nanosora {r['forward_b2_s'] * 1e3:.1f} ms, "
        f"WanTransformer3DModel {r['wan_forward_b2_s'] * 1e3:.1f} ms: "
        f"{r['forward_b2_vs_diffusers_speedup']:.2f}x"
    )
    if "train_step_bf16_s" in r:
        text += (
            f"\nbf16 autocast (native here; matmul peak {r['matmul_peak_bf16_gflops']:.0f} GFLOP/s): "
            f"training step {r['train_step_bf16_s']:.3f} s ({r['train_bf16_speedup']:.2f}x fp32, "
            f"{r['train_bf16_fraction_of_bf16_peak']:.0%} of the bf16 peak); forward, batch {r['batch']}: "
            f"nanosora {r['forward_bf16_s']:.4f} s, WanTransformer3DModel {r['wan_forward_bf16_s']:.4f} s: "
            f"{r['forward_bf16_vs_diffusers_speedup']:.2f}x"
        )
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    r = measure(args.preset, args.batch)
    print(report(r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2)


if __name__ == "__main__":
    main()
