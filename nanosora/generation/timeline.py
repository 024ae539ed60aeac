"""The timeline behind every generation mode: a row of frames, some given and some to make.

Text to video is a timeline with nothing given; image to video gives one frame; extending
gives the video and asks for frames after (or before) it; connecting gives two clips with
a gap; a loop gives the start of a clip again after its end. One procedure fills them all:
cover the unknown frames with windows of the length the transformer was trained on, each
window conditioned (frame mask + clean latents) on the frames already known inside it.

    given frames ─┐                                 ┌─ forward: context on the left
                  ├─ window planner ─ window ─ ... ─┤
    unknown ──────┘                                 └─ backward: context on the right

Long videos are the same thing: windows move along the timeline, each one keeping a short
context of frames from its neighbour, so time grows linearly with duration and memory
stays that of one window (plus the output frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Context frames a window keeps from what is already known: 1 + 4 frames on the left are the
# first two latent frames (the first latent holds one frame, each later one four), 8 frames
# on the right are the last two.
CONTEXT_LEFT = 5
CONTEXT_RIGHT = 8
# the shortest loop: its last two latent groups are remade after a first frame that stays
LOOP_MIN = 9


@dataclass
class Timeline:
    frames: np.ndarray  # (F, H, W, 3) uint8; meaningful where known
    known: np.ndarray  # (F,) bool
    init: np.ndarray | None = None  # (F, H, W, 3): the video an edit starts from

    @classmethod
    def blank(cls, n: int, height: int, width: int) -> Timeline:
        if n < 1:
            raise ValueError(f"a timeline needs at least one frame, got {n}")
        return cls(np.zeros((n, height, width, 3), np.uint8), np.zeros(n, bool))

    def __len__(self) -> int:
        return len(self.known)

    def put(self, start: int, frames: np.ndarray) -> None:
        frames = np.asarray(frames, dtype=np.uint8)
        if start < 0 or start + len(frames) > len(self):
            raise ValueError(
                f"frames {start}..{start + len(frames) - 1} are outside the timeline (0..{len(self) - 1})"
            )
        self.frames[start : start + len(frames)] = frames
        self.known[start : start + len(frames)] = True

    def window_pixels(self, s: int, e: int) -> np.ndarray:
        """The frames of window [s, e) to encode: known frames as they are; unknown ones from
        the edit source, or else held from the nearest known frame (what the encoder sees
        there does not matter for a generated latent, but a held frame keeps the causal
        encoder's view of the known frames that follow it natural)."""
        out = self.frames[s:e].copy()
        known = self.known[s:e]
        if self.init is not None:
            out[~known] = self.init[s:e][~known]
            return out
        idx = np.flatnonzero(known)
        if len(idx):
            for i in np.flatnonzero(~known):
                out[i] = out[idx[np.argmin(np.abs(idx - i))]]
        return out


def window_length(n: int, window: int, factor: int = 4) -> int:
    """The longest length 1 + factor*k that is at most min(n, window)."""
    return 1 + factor * ((min(n, window) - 1) // factor)


def next_window(known: np.ndarray, window: int, factor: int = 4) -> tuple[int, int] | None:
    """The next window [s, e) to generate, or None when every frame is known. Runs of unknown
    frames are filled from the left with context on the left; a run at the very start with
    known frames after it (extending backwards, an image placed late) is filled from its
    right end, with context on the right."""
    n = len(known)
    if known.all():
        return None
    length = window_length(n, window, factor)
    u = int(np.flatnonzero(~known)[0])
    left, right = context(length, factor)
    if u == 0 and known.any():
        v = int(np.flatnonzero(known)[0])  # the first known frame: the run is [0, v)
        e = min(n, max(length, v + right))
        return e - length, e
    s = min(max(0, u - left), n - length)
    return s, s + length


def context(length: int, factor: int = 4) -> tuple[int, int]:
    """Context frames (left, right) a window of `length` keeps: whole latent groups (1 + 4k on
    the left, 4k on the right), leaving at least one group of new frames."""
    room = max(0, length - 1 - factor)
    left = min(CONTEXT_LEFT, room)
    left = 1 + factor * ((left - 1) // factor) if left >= 1 else 0
    return left, factor * (min(CONTEXT_RIGHT, room) // factor)


def plan(known: np.ndarray, window: int, factor: int = 4) -> list[tuple[int, int]]:
    """Every window, in order (the plan depends only on which frames are known)."""
    known = known.copy()
    out = []
    while (w := next_window(known, window, factor)) is not None:
        if known[w[0] : w[1]].all():  # cannot happen; a guard against an endless plan
            raise RuntimeError(f"window {w} adds no frames to the timeline")
        out.append(w)
        known[w[0] : w[1]] = True
    return out


def latent_mask(known: np.ndarray, factor: int = 4) -> np.ndarray:
    """Which latent frames of a window are given: the first latent frame encodes frame 0 on
    its own, latent j >= 1 encodes frames factor*(j-1)+1 .. factor*j. A latent is given when
    all of its frames are known; when none is, a latent with some known frames is (a lone
    image placed inside a group: its group is encoded as that image held still)."""
    n = len(known)
    groups = [known[:1]] + [known[1 + factor * j : 1 + factor * (j + 1)] for j in range((n - 1) // factor)]
    full = np.array([bool(g.all()) for g in groups])
    if full.any():
        return full
    return np.array([bool(g.any()) for g in groups])


def window_seed(seed: int, index: int) -> int:
    """The seed of the index-th window: the user's seed for the first, and seeds derived from
    (seed, index) for the others, so that seeds 0 and 1 do not give shifted copies."""
    if index == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), index]).generate_state(1)[0])


def extend_timeline(video: np.ndarray, n: int, backward: bool = False) -> Timeline:
    """The video with n frames to generate after it (or before it)."""
    if n < 1:
        raise ValueError(f"extending needs at least one new frame, got {n}")
    tl = Timeline.blank(len(video) + n, *video.shape[1:3])
    tl.put(n if backward else 0, video)
    return tl


def connect_timeline(a: np.ndarray, b: np.ndarray, gap: int) -> tuple[Timeline, np.ndarray, np.ndarray]:
    """A transition of `gap` frames from the end of a to the start of b. The timeline holds
    a's last frames and b's first as context; returns it with the parts of a before it and
    of b after it, so that head + filled timeline + tail is the whole connected video."""
    if gap < 1:
        raise ValueError(f"connecting needs at least one new frame between the videos, got {gap}")
    ka, kb = min(len(a), CONTEXT_LEFT), min(len(b), CONTEXT_RIGHT)
    tl = Timeline.blank(ka + gap + kb, *a.shape[1:3])
    tl.put(0, a[len(a) - ka :])
    tl.put(ka + gap, b[:kb])
    return tl, a[: len(a) - ka], b[kb:]


def loop_timeline(frames: np.ndarray, period: int | None = None, factor: int = 4) -> Timeline:
    """Remake the end of a loop of `period` frames (None: all of them) so that it flows into
    its start: the clip's first frames are placed again from frame `period` to the end of
    the next whole latent group, the last 2*factor frames of the period are regenerated
    between, and the caller keeps the first `period` frames."""
    n = len(frames) if period is None else period
    if n < 1 + 2 * factor:
        raise ValueError(f"a loop needs at least {1 + 2 * factor} frames, got {n}")
    total = 1 + factor * -(-(n + factor - 1) // factor)  # n + factor, up to 1 + 4k
    if total - n > len(frames):
        raise ValueError(f"a loop of {n} frames needs at least {total - n} frames to start from")
    tl = Timeline.blank(total, *frames.shape[1:3])
    tl.put(0, frames[: n - 2 * factor])
    tl.put(n, frames[: total - n])
    return tl
