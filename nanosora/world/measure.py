"""Per-colour measurements of a clip's pixels, the scorer's raw material (score.py).

It reads nothing but pixels, so it judges rendered and generated clips alike. Each pixel is
unmixed against the background b: for every palette colour c, alpha = (p-b).(c-b)/|c-b|^2
and the residual |p - b - alpha (c-b)| say how much of c the pixel holds. A pixel belongs to
the colour with the smallest residual; alpha >= 0.6 makes it part of the object's body, and
a lower alpha (an anti-aliased edge next to the body, or a 40% trail) is counted apart.
Unmixing instead of a hue test keeps trails and edges from being read as other colours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nanosora.world import spec

PALETTE = np.array(list(spec.COLOURS.values()), dtype=np.float32)
NAMES = list(spec.COLOURS)
BODY_ALPHA, EDGE_ALPHA, MAX_RESIDUAL = 0.6, 0.1, 60.0
AREA_K = {"circle": math.pi / 4, "square": 1.0, "triangle": math.sqrt(3) / 4}


@dataclass
class Stats:
    """Per-frame measurements of one colour, in pixels."""

    present: np.ndarray  # (T,) bool
    area: np.ndarray  # soft area
    cx: np.ndarray
    cy: np.ndarray
    width: np.ndarray  # soft extents
    height: np.ndarray
    box: np.ndarray  # (T, 4) x0, y0, x1, y1 of the body
    trail: np.ndarray  # pixels at trail opacity (not body, not edge)
    touch: np.ndarray  # (T,) bool: another colour's body touches this one (it may be partly hidden)
    px: np.ndarray  # centres of the column and row coverage profiles (about the box centre)
    py: np.ndarray
    blobs: np.ndarray  # (T,) connected pieces of the body of at least min_px pixels


def estimate_background(frames: np.ndarray) -> tuple[str, np.ndarray]:
    """The named background nearest the clip's median colour, and that median colour."""
    sample = frames[:: max(1, len(frames) // 16)].reshape(-1, 3).astype(np.float32)
    med = np.median(sample, axis=0)
    names = list(spec.BACKGROUNDS)
    d = [np.linalg.norm(med - np.array(spec.BACKGROUNDS[n], np.float32)) for n in names]
    return names[int(np.argmin(d))], med


def _unmix(frames: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best palette index (-1 where none fits) and its alpha, each (T, H, W)."""
    p = frames.astype(np.float32) - bg
    d = PALETTE - bg  # (8, 3)
    alpha = np.einsum("thwc,kc->thwk", p, d) / np.einsum("kc,kc->k", d, d)
    alpha = np.clip(alpha, 0.0, 1.2)
    resid = np.linalg.norm(p[..., None, :] - alpha[..., None] * d, axis=-1)  # (T,H,W,8)
    best = np.argmin(resid, axis=-1)
    a = np.take_along_axis(alpha, best[..., None], -1)[..., 0]
    r = np.take_along_axis(resid, best[..., None], -1)[..., 0]
    best = np.where((r < MAX_RESIDUAL) & (a >= EDGE_ALPHA), best, -1)
    return best.astype(np.int8), a


def _dilate(m: np.ndarray) -> np.ndarray:
    out = m.copy()
    out[:, 1:] |= m[:, :-1]
    out[:, :-1] |= m[:, 1:]
    out[:, :, 1:] |= m[:, :, :-1]
    out[:, :, :-1] |= m[:, :, 1:]
    return out


def count_blobs(mask: np.ndarray, min_px: int) -> np.ndarray:
    """Connected pieces (8-neighbour) of at least min_px pixels in each frame of a (T, H, W)
    bool mask. Labels spread as a running minimum over neighbours until nothing changes: in
    NumPy, over all frames at once (a per-frame flood fill in Python is far slower)."""
    t, h, w = mask.shape
    big = np.iinfo(np.int32).max
    lab = np.where(mask, np.arange(t * h * w, dtype=np.int32).reshape(t, h, w), big)
    while True:
        p = np.pad(lab, ((0, 0), (1, 1), (1, 1)), constant_values=big)
        nb = lab
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                nb = np.minimum(nb, p[:, dy : dy + h, dx : dx + w])
        nb = np.where(mask, nb, big)
        if np.array_equal(nb, lab):
            break
        lab = nb
    out = np.zeros(t, dtype=np.int32)
    for i in range(t):
        _, sizes = np.unique(lab[i][mask[i]], return_counts=True)
        out[i] = int((sizes >= min_px).sum())
    return out


def measure(frames: np.ndarray, bg: np.ndarray, named: set[str], chunk: int = 32) -> dict[str, Stats]:
    """Per-frame statistics of every palette colour; blob counts (for integrity) only for the
    `named` colours, the only ones that check reads."""
    t, h, w, _ = frames.shape
    # A body needs a quarter of the smallest object Flatland draws (a small shrunk triangle).
    smallest = AREA_K["triangle"] * (spec.SIZES["small"] * spec.SHRINK_FACTOR * min(h, w)) ** 2
    min_px = max(2, int(0.25 * smallest))
    cols = {n: {k: [] for k in Stats.__dataclass_fields__} for n in NAMES}
    ys, xs = np.arange(h, dtype=np.float32) + 0.5, np.arange(w, dtype=np.float32) + 0.5
    for c0 in range(0, t, chunk):
        best, a = _unmix(frames[c0 : c0 + chunk], bg)
        bodies = (best >= 0) & (a >= BODY_ALPHA)
        for k, name in enumerate(NAMES):
            mine = best == k
            body = mine & (a >= BODY_ALPHA)
            near = _dilate(_dilate(body))
            soft = np.where(mine & _dilate(body), np.minimum(a, 1.0), 0.0)
            area = soft.sum((1, 2))
            safe = np.maximum(area, 1e-6)
            st = cols[name]
            st["present"].append(body.sum((1, 2)) >= min_px)
            st["area"].append(area)
            st["cx"].append((soft.sum(1) * xs).sum(1) / safe)
            st["cy"].append((soft.sum(2) * ys).sum(1) / safe)
            colmax, rowmax = soft.max(1), soft.max(2)
            st["width"].append(colmax.sum(1))
            st["height"].append(rowmax.sum(1))
            st["px"].append((colmax * xs).sum(1) / np.maximum(colmax.sum(1), 1e-6))
            st["py"].append((rowmax * ys).sum(1) / np.maximum(rowmax.sum(1), 1e-6))
            anyx, anyy = body.any(1), body.any(2)
            box = np.stack(
                [
                    anyx.argmax(1),
                    anyy.argmax(1),
                    w - anyx[:, ::-1].argmax(1),
                    h - anyy[:, ::-1].argmax(1),
                ],
                1,
            )
            st["box"].append(box)
            st["trail"].append((mine & ~_dilate(body) & (a < BODY_ALPHA) & (a >= 0.2)).sum((1, 2)))
            st["touch"].append((near & bodies & ~body).sum((1, 2)) >= 2)
            counted = name in named and body.any()
            st["blobs"].append(count_blobs(body, min_px) if counted else np.zeros(len(body), np.int32))
    return {n: Stats(**{k: np.concatenate(v) for k, v in cols[n].items()}) for n in NAMES}


def fill_ratio(st: Stats) -> np.ndarray:
    return st.area / np.maximum(st.width * st.height, 1e-6)
