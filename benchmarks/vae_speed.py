"""Autoencoder speed and memory, side by side with diffusers' AutoencoderKLWan.

1. Decode a 17-frame 64x64 clip (latents 16 x 5 x 8 x 8): nanosora's default preset against
   AutoencoderKLWan (same 4x time / 8x space compression, 16 latent channels) built with a
   base width chosen so that its parameter count is at most ours. Random weights: this
   compares speed, not quality. Target: <= 0.15 s, and >= 3x faster than Wan.
2. Peak memory (RSS) of encoding and decoding 2, 10 and 60 s clips at 8 fps, each in a
   fresh process so that one size's peak does not hide another's. Target: flat.

    python benchmarks/vae_speed.py [--json OUT] [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch
from common import params, peak_rss_mb, timed, wan_vae_at_most


def memory_child(seconds: float) -> None:
    """Run in a subprocess: stream-encode and stream-decode a clip, print peak RSS in MB."""
    from nanosora.config import VAE_PRESETS
    from nanosora.networks.vae import VideoVAE

    torch.manual_seed(0)
    vae = VideoVAE(VAE_PRESETS["default"]).eval()
    frames = int(seconds * 8) + 1
    with torch.inference_mode():
        # frames arrive chunk by chunk as a reader would give them: never the whole clip in memory
        latents = []
        state: dict = {}
        for sl in vae._time_chunks(frames, 4, 4):
            x = torch.rand(1, 3, sl.stop - sl.start, 64, 64) * 2 - 1
            latents.append(vae._encode_step(x, state)[0])
        z = torch.cat(latents, 2)
        n = 0
        for piece in vae.decode_chunks(z, chunk=4):
            n += piece.shape[2]  # a writer would encode these frames and drop them
    assert n == frames
    print(peak_rss_mb())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--memory-child", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child is not None:
        memory_child(args.memory_child)
        return

    from nanosora.config import VAE_PRESETS
    from nanosora.networks.vae import VideoVAE

    torch.manual_seed(0)
    ours = VideoVAE(VAE_PRESETS["default"]).eval()
    z = torch.randn(1, 16, 5, 8, 8)
    with torch.inference_mode():
        t_ours = timed(lambda: ours.decode(z), args.repeats)
    base, wan = wan_vae_at_most(params(ours))
    wan.eval()
    with torch.inference_mode():
        t_wan = timed(lambda: wan.decode(z).sample, args.repeats)
        out = wan.decode(z).sample
    assert out.shape == (1, 3, 17, 64, 64), out.shape

    mem = {}
    for s in (2, 10, 60):
        r = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(s)], capture_output=True, text=True, check=True
        )
        mem[f"{s}s"] = round(float(r.stdout.strip().splitlines()[-1]), 1)

    result = {
        "threads": torch.get_num_threads(),
        "nanosora_params": params(ours),
        "wan_params": params(wan),
        "wan_base_dim": base,
        "decode_17x64x64_s": round(t_ours, 4),
        "wan_decode_17x64x64_s": round(t_wan, 4),
        "vs_diffusers_speedup": round(t_wan / t_ours, 2),
        "peak_rss_mb_encode_decode": mem,
    }
    print(f"{'':32} {'nanosora':>12} {'AutoencoderKLWan':>18}")
    print(f"{'parameters':32} {params(ours):>12,} {params(wan):>18,}")
    print(f"{'decode 17x64x64 (median, s)':32} {t_ours:>12.4f} {t_wan:>18.4f}")
    print(f"speed-up: {t_wan / t_ours:.1f}x   target <= 0.15 s and >= 3x")
    peaks = ", ".join(f"{k} {v} MB" for k, v in mem.items())
    print(f"peak RSS, stream encode + decode at 64x64, 8 fps: {peaks}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
