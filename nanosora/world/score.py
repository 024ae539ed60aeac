"""The pixel-only scorer of docs/world.md: does a clip show what a prompt asks for?

It reads nothing but pixels, so it judges rendered and generated clips alike. Each pixel is
unmixed against the background b: for every palette colour c, alpha = (p-b).(c-b)/|c-b|^2
and the residual |p - b - alpha (c-b)| say how much of c the pixel holds. A pixel belongs to
the colour with the smallest residual; alpha >= 0.6 makes it part of the object's body, and
a lower alpha (an anti-aliased edge next to the body, or a 40% trail) is counted apart.
Unmixing instead of a hue test keeps trails and edges from being read as other colours.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from nanosora.world import spec
from nanosora.world.parse import ObjectSpec, PromptSpec, ShotSpec, parse_prompt

_PALETTE = np.array(list(spec.COLOURS.values()), dtype=np.float32)
_NAMES = list(spec.COLOURS)
_BODY_ALPHA, _EDGE_ALPHA, _MAX_RESIDUAL = 0.6, 0.1, 60.0
_AREA_K = {"circle": math.pi / 4, "square": 1.0, "triangle": math.sqrt(3) / 4}


@dataclass
class Check:
    check: str
    passed: bool
    detail: str

    def __post_init__(self):
        self.passed = bool(self.passed)  # NumPy bools do not serialise to JSON


@dataclass
class ObjectVerdict:
    object: str
    passed: bool
    checks: list[Check] = field(default_factory=list)

    def __post_init__(self):
        self.passed = bool(self.passed)


@dataclass
class Verdict:
    prompt: str
    passed: bool
    background: Check
    objects: list[ObjectVerdict]
    extras: Check
    shots: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    def checks(self) -> list[Check]:
        """Every check made: background, extras, and each object's."""
        return [self.background, self.extras, *(c for o in self.objects for c in o.checks)]

    def explain(self) -> str:
        lines = [f"{'PASS' if self.passed else 'FAIL'}: {self.prompt}"]
        for c in (self.background, self.extras):
            lines.append(f"  [{'ok' if c.passed else 'x '}] {c.check}: {c.detail}")
        for o in self.objects:
            for c in o.checks:
                lines.append(f"  [{'ok' if c.passed else 'x '}] {o.object} {c.check}: {c.detail}")
        return "\n".join(lines)


@dataclass
class _Stats:
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
    d = _PALETTE - bg  # (8, 3)
    alpha = np.einsum("thwc,kc->thwk", p, d) / np.einsum("kc,kc->k", d, d)
    alpha = np.clip(alpha, 0.0, 1.2)
    resid = np.linalg.norm(p[..., None, :] - alpha[..., None] * d, axis=-1)  # (T,H,W,8)
    best = np.argmin(resid, axis=-1)
    a = np.take_along_axis(alpha, best[..., None], -1)[..., 0]
    r = np.take_along_axis(resid, best[..., None], -1)[..., 0]
    best = np.where((r < _MAX_RESIDUAL) & (a >= _EDGE_ALPHA), best, -1)
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


def measure(frames: np.ndarray, bg: np.ndarray, named: set[str], chunk: int = 32) -> dict[str, _Stats]:
    """Per-frame statistics of every palette colour; blob counts (for integrity) only for the
    `named` colours, the only ones that check reads."""
    t, h, w, _ = frames.shape
    # A body needs a quarter of the smallest object Flatland draws (a small shrunk triangle).
    smallest = _AREA_K["triangle"] * (spec.SIZES["small"] * spec.SHRINK_FACTOR * min(h, w)) ** 2
    min_px = max(2, int(0.25 * smallest))
    cols = {n: {k: [] for k in _Stats.__dataclass_fields__} for n in _NAMES}
    ys, xs = np.arange(h, dtype=np.float32) + 0.5, np.arange(w, dtype=np.float32) + 0.5
    for c0 in range(0, t, chunk):
        best, a = _unmix(frames[c0 : c0 + chunk], bg)
        bodies = (best >= 0) & (a >= _BODY_ALPHA)
        for k, name in enumerate(_NAMES):
            mine = best == k
            body = mine & (a >= _BODY_ALPHA)
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
            st["trail"].append((mine & ~_dilate(body) & (a < _BODY_ALPHA) & (a >= 0.2)).sum((1, 2)))
            st["touch"].append((near & bodies & ~body).sum((1, 2)) >= 2)
            counted = name in named and body.any()
            st["blobs"].append(count_blobs(body, min_px) if counted else np.zeros(len(body), np.int32))
    return {n: _Stats(**{k: np.concatenate(v) for k, v in cols[n].items()}) for n in _NAMES}


def _cuts(frames: np.ndarray, n_shots: int, fps: float) -> list[tuple[int, int]]:
    """Split into shots at hard cuts: shots share the clip equally (as the sampler, the
    parser and the generator make them), and each cut is the largest frame-to-frame change
    within a few frames of its even split, which absorbs rounding of shot lengths."""
    n = len(frames)
    if n_shots <= 1 or n < 2:
        return [(0, n)]
    diff = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean((1, 2, 3))
    seconds = (n - 1) / fps
    cut = []
    for k in range(1, n_shots):
        centre = k * seconds / n_shots * fps
        lo, hi = max(0, int(centre) - 2), min(n - 1, int(centre) + 2)
        cut.append(lo + int(np.argmax(diff[lo:hi])) + 1)
    edges = [0, *cut, n]
    return list(zip(edges[:-1], edges[1:], strict=True))


def score(frames: np.ndarray, fps: float, prompt: str | PromptSpec) -> Verdict:
    """Judge a clip (uint8 (T, H, W, 3)) against a prompt. Raises PromptError for a prompt
    the parser does not understand and ValueError for frames of the wrong shape."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 (T, H, W, 3); got {frames.dtype} {frames.shape}")
    ps = parse_prompt(prompt) if isinstance(prompt, str) else prompt
    bg_name, bg = estimate_background(frames)
    want_bg = ps.background
    bg_check = Check(
        "background",
        want_bg is None or want_bg == bg_name,
        f"found {bg_name}" + (f", prompt asks for {want_bg}" if want_bg else " (prompt names none)"),
    )
    named = {o.colour for s in ps.shots for o in s.objects}
    stats = measure(frames, bg, named)
    verdicts: list[ObjectVerdict] = []
    extra_found: list[str] = []
    for (f0, f1), shot in zip(_cuts(frames, len(ps.shots), fps), ps.shots, strict=True):
        sub = {
            n: _Stats(**{k: getattr(s, k)[f0:f1] for k in _Stats.__dataclass_fields__})
            for n, s in stats.items()
        }
        verdicts += _score_shot(sub, shot, fps, frames.shape[2], frames.shape[1], len(ps.shots) > 1)
        h, w = frames.shape[1:3]
        min_extra = max(4, 0.3 * _AREA_K["circle"] * (spec.SIZES["small"] * min(h, w)) ** 2)
        for n in _NAMES:
            if n in named:
                continue
            # an extra is a solid blob; a thin seam where two colours meet is not
            blob = sub[n].present & (sub[n].area >= min_extra) & (_fill(sub[n]) >= 0.35)
            big = blob.mean() if f1 > f0 else 0.0
            if big > 0.25:
                extra_found.append(n)
    extras = Check(
        "no extras",
        not extra_found,
        "no unnamed colour"
        if not extra_found
        else f"unnamed colours present: {', '.join(sorted(set(extra_found)))}",
    )
    passed = bg_check.passed and extras.passed and all(v.passed for v in verdicts)
    return Verdict(ps.text, bool(passed), bg_check, verdicts, extras, len(ps.shots))


def _score_shot(
    stats: dict[str, _Stats],
    shot: ShotSpec,
    fps: float,
    w: int,
    h: int,
    multi: bool,
) -> list[ObjectVerdict]:
    n = len(next(iter(stats.values())).present)
    t = np.arange(n) / fps
    cam = (
        0.0 if shot.camera is None else (spec.CAMERA_SPEED if shot.camera == "right" else -spec.CAMERA_SPEED)
    )
    out = []
    for o in shot.objects:
        st = stats[o.colour]
        motion = o.resolved_motion
        limited = motion.startswith("moves") or motion == "collides" or shot.camera is not None
        win = t <= spec.IN_VIEW_SECONDS + 1e-9 if limited else np.ones(n, bool)
        if motion == "collides" and o.partner is not None:
            win &= t <= _contact_time(st, stats[shot.objects[o.partner].colour], t) + spec.COLLISION_AFTER
        overlap = _occluded(o, shot, stats)
        excused = overlap & ~st.present
        seen = (st.present | excused) & win
        checks = [
            Check(
                "colour",
                seen.sum() >= 0.9 * win.sum(),
                f"present in {int(seen.sum())}/{int(win.sum())} frames",
            )
        ]
        good = st.present & win
        # Shape, size and in-place motions are read where nothing touches it, if it can be.
        clear = good & ~overlap if (good & ~overlap).any() else good
        if good.sum() == 0:
            out.append(ObjectVerdict(o.name(), False, checks))
            continue
        # The object's x in world coordinates: undo the camera pan (screen x + offset).
        x = st.cx / w + cam * t
        y = st.cy / h
        checks.append(_shape_check(o, st, clear, motion))
        if o.size is not None:
            checks.append(_size_check(o, st, clear, min(w, h), t, motion))
        in_place = motion in ("stays still", "spins", "grows", "shrinks")
        frames_used = clear if in_place or clear.sum() >= 0.5 * good.sum() else good
        checks.append(_motion_check(o, motion, x, y, t, st, frames_used, fps, shot, stats, w, h))
        if o.trail:
            checks.append(_trail_check(st, good))
        checks.append(_persistence_check(st, win, overlap, clear, motion))
        checks.append(_integrity_check(st, win, overlap, clear, motion))
        out.append(ObjectVerdict(o.name(), all(c.passed for c in checks), checks))
    return out


def _contact_time(a: _Stats, b: _Stats, t: np.ndarray) -> float:
    """When two colliding objects are closest (they touch), from their centroids."""
    both = a.present & b.present
    if not both.any():
        return float(t[-1])
    d = np.hypot(a.cx - b.cx, a.cy - b.cy)
    return float(t[both][np.argmin(d[both])])


def _occluded(o: ObjectSpec, shot: ShotSpec, stats: dict[str, _Stats]) -> np.ndarray:
    """Frames where another named object's body overlaps this one's box (its own box, or
    where it was last seen when it is hidden): the frames in which it may be occluded."""
    st = stats[o.colour]
    last = None
    out = np.zeros(len(st.present), bool)
    for i in range(len(st.present)):
        if st.present[i]:
            last = st.box[i]
            out[i] = st.touch[i]
            continue
        box = last if last is not None else _next_box(st, i)
        if box is None:
            continue
        for other in shot.objects:
            ob, op = stats[other.colour].box[i], stats[other.colour].present[i]
            if (
                other.colour != o.colour
                and op
                and ob[0] <= box[2]
                and box[0] <= ob[2]
                and ob[1] <= box[3]
                and box[1] <= ob[3]
            ):
                out[i] = True
    return out


def _next_box(st: _Stats, i: int) -> np.ndarray | None:
    later = np.nonzero(st.present[i:])[0]
    return st.box[i + later[0]] if len(later) else None


def _shape_check(o: ObjectSpec, st: _Stats, good: np.ndarray, motion: str) -> Check:
    if motion == "spins":
        return Check("shape", True, "not checked: a spinning shape changes its fill ratio")
    big = good & (st.area >= 0.5 * st.area[good].max())  # a shrunk shape is too few pixels
    fill = float(np.median(_fill(st)[big]))
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


def _fill(st: _Stats) -> np.ndarray:
    return st.area / np.maximum(st.width * st.height, 1e-6)


@functools.lru_cache(maxsize=4096)
def _reference_fill_cached(shape: str, area_q: int) -> float:
    from nanosora.world.render import _coverage

    ext = math.sqrt(area_q / 4 / _AREA_K[shape])
    n = int(ext) + 6
    grid = np.arange(n, dtype=np.float32) + 0.5
    c = np.array([n / 2 + 0.3])
    a = _coverage(shape, c, c, np.array([ext]), np.zeros(1), grid, grid)[0]
    a = np.where(a >= _EDGE_ALPHA, a, 0.0)
    return float(a.sum() / (a.max(0).sum() * a.max(1).sum()))


def _reference_fill(shape: str, area: float) -> float:
    return _reference_fill_cached(shape, int(round(area * 4)))


def _size_check(
    o: ObjectSpec,
    st: _Stats,
    good: np.ndarray,
    side: int,
    t: np.ndarray,
    motion: str,
) -> Check:
    scale = np.ones_like(t)
    if motion in ("grows", "shrinks"):  # the size it starts at: undo the expected scaling
        target = spec.GROW_FACTOR if motion == "grows" else spec.SHRINK_FACTOR
        scale = 1 + (target - 1) * np.clip(t / spec.SCALE_SECONDS, 0, 1)
    exts = np.sqrt(st.area[good] / _AREA_K[o.shape]) / scale[good] / side
    ext = float(np.median(exts))
    found = min(spec.SIZES, key=lambda s: abs(spec.SIZES[s] - ext))
    return Check("size", found == o.size, f"extent {ext:.3f} of the frame: {found} (expected {o.size})")


def _motion_check(
    o: ObjectSpec,
    motion: str,
    x: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    st: _Stats,
    good: np.ndarray,
    fps: float,
    shot: ShotSpec,
    stats: dict[str, _Stats],
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
        fill = _fill(st)[good]
        spread = float(fill.max() - fill.min())
        ext = math.sqrt(float(np.median(st.area[good])) / _AREA_K[o.shape])
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


def _trail_check(st: _Stats, good: np.ndarray) -> Check:
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


def _missing(st: _Stats, win: np.ndarray, overlap: np.ndarray) -> np.ndarray:
    """Frames where the object should be in view, is not, and nothing may be hiding it."""
    return win & ~st.present & ~overlap


def _persistence_check(
    st: _Stats,
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


def _integrity_check(
    st: _Stats,
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
