"""The scorer's checks of one object in one shot: shape, size, motion, trail, persistence
and integrity, each a Check with the figures it was judged on (score.py runs them)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from nanosora.world import spec
from nanosora.world.measure import AREA_K, EDGE_ALPHA, Stats, fill_ratio
from nanosora.world.parse import ObjectSpec, ShotSpec


@dataclass
class Check:
    check: str
    passed: bool
    detail: str

    def __post_init__(self):
        self.passed = bool(self.passed)  # NumPy bools do not serialise to JSON


def next_box(st: Stats, i: int) -> np.ndarray | None:
    later = np.nonzero(st.present[i:])[0]
    return st.box[i + later[0]] if len(later) else None


def shape_check(o: ObjectSpec, st: Stats, good: np.ndarray, motion: str) -> Check:
    if motion == "spins":
        return Check("shape", True, "not checked: a spinning shape changes its fill ratio")
    big = good & (st.area >= 0.5 * st.area[good].max())  # a shrunk shape is too few pixels
    fill = float(np.median(fill_ratio(st)[big]))
    area = float(np.median(st.area[big]))
    # Compare with each shape drawn at this many pixels and measured the same way: at a few
    # pixels across, edges shift every fill ratio away from the ideal 0.79 / 1.0 / 0.5.
    refs = {s: _reference_fill(s, area) for s in spec.SHAPES}
    found = min(refs, key=lambda s: abs(refs[s] - fill))
    return Check(
        "shape",
        found == o.shape,
        f"fill ratio {fill:.2f}: {found} (references at this size: "
        + ", ".join(f"{s} {v:.2f}" for s, v in refs.items())
        + f"; expected {o.shape})",
    )


@functools.lru_cache(maxsize=4096)
def _reference_fill_cached(shape: str, area_q: int) -> float:
    from nanosora.world.render import _coverage

    ext = math.sqrt(area_q / 4 / AREA_K[shape])
    n = int(ext) + 6
    grid = np.arange(n, dtype=np.float32) + 0.5
    c = np.array([n / 2 + 0.3])
    a = _coverage(shape, c, c, np.array([ext]), np.zeros(1), grid, grid)[0]
    a = np.where(a >= EDGE_ALPHA, a, 0.0)
    return float(a.sum() / (a.max(0).sum() * a.max(1).sum()))


def _reference_fill(shape: str, area: float) -> float:
    return _reference_fill_cached(shape, int(round(area * 4)))


def size_check(
    o: ObjectSpec,
    st: Stats,
    good: np.ndarray,
    side: int,
    t: np.ndarray,
    motion: str,
) -> Check:
    scale = np.ones_like(t)
    if motion in ("grows", "shrinks"):  # the size it starts at: undo the expected scaling
        target = spec.GROW_FACTOR if motion == "grows" else spec.SHRINK_FACTOR
        scale = 1 + (target - 1) * np.clip(t / spec.SCALE_SECONDS, 0, 1)
    exts = np.sqrt(st.area[good] / AREA_K[o.shape]) / scale[good] / side
    ext = float(np.median(exts))
    found = min(spec.SIZES, key=lambda s: abs(spec.SIZES[s] - ext))
    return Check("size", found == o.size, f"extent {ext:.3f} of the frame: {found} (expected {o.size})")


def motion_check(
    o: ObjectSpec,
    motion: str,
    x: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    st: Stats,
    good: np.ndarray,
    fps: float,
    shot: ShotSpec,
    stats: dict[str, Stats],
    w: int,
    h: int,
) -> Check:
    idx = np.nonzero(good)[0]
    i0, i1 = idx[0], idx[-1]
    dx, dy = float(x[i1] - x[i0]), float(y[i1] - y[i0])
    disp = float(np.max(np.hypot(x[idx] - x[i0], y[idx] - y[i0])))
    dur = float(t[i1] - t[i0])
    name = f"motion ({motion})"
    if motion == "stays still":
        return Check(name, disp < 0.08, f"largest displacement {disp:.3f} (must be < 0.08)")
    if motion.startswith("moves"):
        d = motion.split()[1]
        along, across = {"right": (dx, dy), "left": (-dx, dy), "down": (dy, dx), "up": (-dy, dx)}[d]
        # The spec's 0.2 of the frame, or half the expected travel in a shot under 1.6 s.
        need = min(0.2, 0.5 * spec.LINEAR_SPEED * dur)
        ok = along >= need and abs(across) < 0.5 * along
        return Check(name, ok, f"moved {along:.3f} {d} (>= {need:.3f}) with drift {abs(across):.3f} (< half)")
    if motion == "bounces":
        run = good[1:] & good[:-1]
        if run.sum() < 2:
            return Check(name, False, "too few consecutive frames to measure a velocity")
        vx = float(np.median(np.abs(np.diff(x))[run]) * fps)
        vy = float(np.median(np.abs(np.diff(y))[run]) * fps)
        ok = 0.15 <= vx <= 0.5 and 0.15 <= vy <= 0.5
        return Check(name, ok, f"speed {vx:.2f} across and {vy:.2f} down per second (each 0.15-0.5)")
    if motion == "falls":
        descent = [i0]  # frames until it first stops going down (the first bounce)
        for i in idx[1:]:
            if y[i] < y[descent[-1]]:
                break
            descent.append(i)
        drop = float(y[descent[-1]] - y[i0])
        # Drift from the medians of each half: robust to a few frames where another object
        # hides part of it and shifts its centroid.
        half = len(idx) // 2
        drift = float(abs(np.median(x[idx[half:]]) - np.median(x[idx[: max(1, half)]])))
        need = min(0.25, 0.25 * spec.FALL_ACCEL * dur**2)
        ok = drop >= need and drift < 0.08
        detail = f"dropped {drop:.3f} (>= {need:.3f}), drift {drift:.3f} (< 0.08)"
        if len(descent) >= 4:  # a fall accelerates: faster in the second half of the descent
            ts = t[descent]
            mid = descent[int(np.argmin(np.abs(ts - (ts[0] + ts[-1]) / 2)))]
            v1 = (y[mid] - y[descent[0]]) / max(t[mid] - t[descent[0]], 1e-6)
            v2 = (y[descent[-1]] - y[mid]) / max(t[descent[-1]] - t[mid], 1e-6)
            ok = ok and v2 > v1
            detail += f", speeding up ({v1:.2f} then {v2:.2f} per second)"
        return Check(name, ok, detail)
    if motion == "spins":
        # A turning square's fill ratio swings between 1 and 0.5; a triangle's hardly moves,
        # but its centroid swings around the centre of its box. A circle shows no spin.
        fill = fill_ratio(st)[good]
        spread = float(fill.max() - fill.min())
        ext = math.sqrt(float(np.median(st.area[good])) / AREA_K[o.shape])
        off = np.stack([st.cx - st.px, st.cy - st.py], 1)[good]
        swing = float(np.max(np.linalg.norm(off - off[0], axis=1)) / max(ext, 1e-6))
        turned = {"square": spread >= 0.12, "triangle": swing >= 0.08, "circle": True}[o.shape]
        return Check(
            name,
            disp < 0.08 and turned,
            f"displacement {disp:.3f} (< 0.08), fill ratio range {spread:.2f} (square: >= 0.12), "
            f"centroid swing {swing:.2f} of its extent (triangle: >= 0.08)",
        )
    if motion in ("grows", "shrinks"):
        end = idx[t[idx] <= spec.SCALE_SECONDS + 1e-9][-1]
        ratio = float(st.area[end] / max(st.area[i0], 1e-6))
        full = 4.0 if motion == "grows" else 0.25  # area scales with the extent squared
        reach = min(1.0, (t[end] - t[i0]) / spec.SCALE_SECONDS)
        target = 1 + (math.sqrt(full) - 1) * reach  # the extent it should have reached
        ok = (
            ratio >= (1 + (target**2 - 1) * 0.5)
            if motion == "grows"
            else ratio <= (1 - (1 - target**2) * 0.5)
        )
        ok = ok and disp < 0.08
        return Check(name, ok, f"area x{ratio:.2f} by {t[end]:.1f} s (expected about x{target**2:.2f})")
    if motion == "collides":
        other = shot.objects[o.partner] if o.partner is not None else None
        if other is None:
            return Check(name, False, "no partner named")
        ot = stats[other.colour]
        both = good & ot.present
        if both.sum() < 3:
            return Check(name, False, "the two objects are not seen together")
        dist = np.hypot((st.cx - ot.cx) / w, (st.cy - ot.cy) / h)[both]
        k = int(np.argmin(dist))
        ok = dist[0] - dist[k] >= 0.05 and dist[-1] - dist[k] >= 0.05
        return Check(
            name,
            ok,
            f"distance {dist[0]:.2f} -> {dist[k]:.2f} -> {dist[-1]:.2f} (approach, then apart)",
        )
    return Check(name, False, f"unknown motion {motion!r}")


def trail_check(st: Stats, good: np.ndarray) -> Check:
    idx = np.nonzero(good)[0]
    # The latest frames may have another object passing over part of the trail.
    last, mid = st.trail[idx[-3:]].max(), st.trail[idx[len(idx) // 2]]
    area = float(np.median(st.area[good]))
    ok = last >= 0.2 * area and last >= 0.7 * mid
    return Check(
        "trail",
        bool(ok),
        f"trail pixels {int(mid)} mid-clip, {int(last)} at the end (object area {area:.0f})",
    )


def _missing(st: Stats, win: np.ndarray, overlap: np.ndarray) -> np.ndarray:
    """Frames where the object should be in view, is not, and nothing may be hiding it."""
    return win & ~st.present & ~overlap


def persistence_check(
    st: Stats,
    win: np.ndarray,
    overlap: np.ndarray,
    clear: np.ndarray,
    motion: str,
) -> Check:
    missing = _missing(st, win, overlap)
    good = st.present & win
    detail = f"missing in {int(missing.sum())} frames"
    ok = not missing.any()
    if motion not in ("grows", "shrinks") and good.sum():
        area = st.area[good]
        med = float(np.median(st.area[clear]))  # its area where nothing hides part of it
        steady = (area >= 0.6 * med) & (area <= 1.6 * med) | overlap[good]
        ok = ok and bool(steady.all())
        detail += f", area {area.min():.0f}-{area.max():.0f} around {med:.0f}"
    return Check("persistence", ok, detail)


def integrity_check(
    st: Stats,
    win: np.ndarray,
    overlap: np.ndarray,
    clear: np.ndarray,
    motion: str,
) -> Check:
    """Strict integrity: one whole object all the time. Where nothing touches it, it is one
    connected blob (not split, not melted into fragments); its area stays within 0.5-2x of
    its median (unless it grows or shrinks); and it is there in every frame it should be
    in view, except where another object may hide it."""
    alone = win & st.present & ~overlap
    split = alone & (st.blobs != 1)
    missing = _missing(st, win, overlap)
    problems = []
    if split.any():
        problems.append(f"in pieces in {int(split.sum())} frames (up to {int(st.blobs[split].max())})")
    if missing.any():
        problems.append(f"missing in {int(missing.sum())} frames")
    if motion not in ("grows", "shrinks") and alone.any():
        med = float(np.median(st.area[clear]))
        off = alone & ((st.area < 0.5 * med) | (st.area > 2.0 * med))
        if off.any():
            problems.append(f"area outside 0.5-2x of its median {med:.0f} in {int(off.sum())} frames")
    return Check("integrity", not problems, "; ".join(problems) or "one whole blob in every frame")
