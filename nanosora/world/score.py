"""The pixel-only scorer of docs/world.md: does a clip show what a prompt asks for?

It reads nothing but pixels, so it judges rendered and generated clips alike. Each pixel is
unmixed against the background b: for every palette colour c, alpha = (p-b).(c-b)/|c-b|^2
and the residual |p - b - alpha (c-b)| say how much of c the pixel holds. A pixel belongs to
the colour with the smallest residual; alpha >= 0.6 makes it part of the object's body, and
a lower alpha (an anti-aliased edge next to the body, or a 40% trail) is counted apart.
Unmixing instead of a hue test keeps trails and edges from being read as other colours.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from nanosora.world import spec
from nanosora.world.checks import (
    Check,
    integrity_check,
    motion_check,
    next_box,
    persistence_check,
    shape_check,
    size_check,
    trail_check,
)
from nanosora.world.measure import AREA_K, NAMES, Stats, estimate_background, fill_ratio, measure
from nanosora.world.parse import ObjectSpec, PromptSpec, ShotSpec, parse_prompt

__all__ = ["Check", "ObjectVerdict", "Verdict", "score"]


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
            n: Stats(**{k: getattr(s, k)[f0:f1] for k in Stats.__dataclass_fields__})
            for n, s in stats.items()
        }
        verdicts += _score_shot(sub, shot, fps, frames.shape[2], frames.shape[1], len(ps.shots) > 1)
        h, w = frames.shape[1:3]
        min_extra = max(4, 0.3 * AREA_K["circle"] * (spec.SIZES["small"] * min(h, w)) ** 2)
        for n in NAMES:
            if n in named:
                continue
            # an extra is a solid blob; a thin seam where two colours meet is not
            blob = sub[n].present & (sub[n].area >= min_extra) & (fill_ratio(sub[n]) >= 0.35)
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
    stats: dict[str, Stats],
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
        checks.append(shape_check(o, st, clear, motion))
        if o.size is not None:
            checks.append(size_check(o, st, clear, min(w, h), t, motion))
        in_place = motion in ("stays still", "spins", "grows", "shrinks")
        frames_used = clear if in_place or clear.sum() >= 0.5 * good.sum() else good
        checks.append(motion_check(o, motion, x, y, t, st, frames_used, fps, shot, stats, w, h))
        if o.trail:
            checks.append(trail_check(st, good))
        checks.append(persistence_check(st, win, overlap, clear, motion))
        checks.append(integrity_check(st, win, overlap, clear, motion))
        out.append(ObjectVerdict(o.name(), all(c.passed for c in checks), checks))
    return out


def _contact_time(a: Stats, b: Stats, t: np.ndarray) -> float:
    """When two colliding objects are closest (they touch), from their centroids."""
    both = a.present & b.present
    if not both.any():
        return float(t[-1])
    d = np.hypot(a.cx - b.cx, a.cy - b.cy)
    return float(t[both][np.argmin(d[both])])


def _occluded(o: ObjectSpec, shot: ShotSpec, stats: dict[str, Stats]) -> np.ndarray:
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
        box = last if last is not None else next_box(st, i)
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
