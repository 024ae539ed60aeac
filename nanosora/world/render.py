"""The Flatland renderer: anti-aliased flat shapes, any size, fps and duration.

Written in NumPy rather than with a 2D graphics library because every frame of a chunk is
drawn in one vectorised pass (coverage arrays of shape (T, H, W)); that is what lets one
core render hundreds of clips a second (benchmarks/render_speed.py). Edges are
anti-aliased from a signed distance in pixels, coverage = clamp(0.5 - d, 0, 1); an
unrotated square uses the exact box-filtered area instead, which is separable and cheaper.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from nanosora.world import spec
from nanosora.world.scene import Obj, Scene, camera_offset, object_track, shot_bounds

_SQ3 = math.sqrt(3.0)


def _coverage(
    shape: str,
    cx: np.ndarray,
    cy: np.ndarray,
    ext: np.ndarray,
    angle: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
) -> np.ndarray:
    """Fraction of each pixel covered, (T, H, W) float32. cx, cy, ext, angle: (T,) in pixels
    and degrees; xs: (W,), ys: (H,) pixel-centre coordinates."""
    cx, cy, ext = (a.astype(np.float32)[:, None, None] for a in (cx, cy, ext))
    px, py = xs[None, None, :] - cx, ys[None, :, None] - cy  # (T,1,W), (T,H,1)
    if shape == "square" and not np.any(angle):
        h = ext / 2
        wx = np.clip(np.minimum(px + 0.5, h) - np.maximum(px - 0.5, -h), 0, 1)
        wy = np.clip(np.minimum(py + 0.5, h) - np.maximum(py - 0.5, -h), 0, 1)
        return wx * wy
    if shape == "circle":
        d = np.sqrt(px * px + py * py) - ext / 2
        return np.clip(0.5 - d, 0, 1)
    th = np.deg2rad(angle).astype(np.float32)[:, None, None]
    c, s = np.cos(th), np.sin(th)
    qx, qy = c * px + s * py, c * py - s * px  # rotate the sample point by -angle
    if shape == "square":
        d = np.maximum(np.abs(qx), np.abs(qy)) - ext / 2
    else:  # equilateral triangle around its centroid, pointing up: three half-planes
        r_in = ext / (2 * _SQ3)
        d = np.maximum(qy, np.maximum(0.5 * _SQ3 * qx - 0.5 * qy, -0.5 * _SQ3 * qx - 0.5 * qy))
        d = d - r_in
    return np.clip(0.5 - d, 0, 1)


def _object_coverage(
    obj: Obj,
    objects: list[Obj],
    t: np.ndarray,
    aspect: float,
    width: int,
    height: int,
    cam_px: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
) -> np.ndarray:
    tr = object_track(obj, t, aspect, objects)
    ext = obj.extent * min(width, height) * tr.scale
    return _coverage(obj.shape, tr.x * width - cam_px, tr.y * height, ext, tr.angle, xs, ys)


def render_chunks(
    scene: Scene,
    width: int = spec.DEFAULT_WIDTH,
    height: int = spec.DEFAULT_HEIGHT,
    fps: int = spec.DEFAULT_FPS,
    seconds: float = 2.0,
    chunk: int = 64,
) -> Iterator[np.ndarray]:
    """Yield the clip as uint8 arrays of at most `chunk` frames, (t, H, W, 3). Memory stays
    bounded however long the clip is."""
    spec.check_frame_size(width, height)
    spec.check_fps(fps)
    n = spec.num_frames(seconds, fps)
    xs = np.arange(width, dtype=np.float32) + 0.5
    ys = np.arange(height, dtype=np.float32) + 0.5
    bg = np.array(spec.BACKGROUNDS[scene.background], dtype=np.float32)
    frame_t = np.arange(n) / fps
    bounds = shot_bounds(scene, seconds)
    trails = {
        (k, j): _Trail(s1 - s0, scene.shots[k].camera, width, height, fps)
        for k, (s0, s1) in enumerate(bounds)
        for j, obj in enumerate(scene.shots[k].objects)
        if obj.trail
    }
    for c0 in range(0, n, chunk):
        idx = np.arange(c0, min(n, c0 + chunk))
        out = np.empty((len(idx), height, width, 3), dtype=np.float32)
        for k, (s0, s1) in enumerate(bounds):
            last = k == len(bounds) - 1
            sel = (frame_t[idx] >= s0) & ((frame_t[idx] < s1) | last)
            if sel.any():
                ts = frame_t[idx][sel] - s0
                out[sel] = _draw_shot(scene, k, ts, width, height, bg, xs, ys, trails)
        yield np.clip(np.rint(out), 0, 255).astype(np.uint8)


def render(
    scene: Scene,
    width: int = spec.DEFAULT_WIDTH,
    height: int = spec.DEFAULT_HEIGHT,
    fps: int = spec.DEFAULT_FPS,
    seconds: float = 2.0,
) -> np.ndarray:
    """The whole clip as one uint8 array (T, H, W, 3)."""
    return np.concatenate(list(render_chunks(scene, width, height, fps, seconds)))


class _Trail:
    """Where one object has been since its shot began, as coverage on a world-space canvas
    wide enough for every camera position of the shot. It is carried from chunk to chunk
    and stamped at 4x the frame rate so that fast objects leave an unbroken trail; each
    stamp touches only the columns the object spans, so memory stays bounded."""

    def __init__(self, shot_seconds: float, camera: str | None, width: int, height: int, fps: int):
        cams = camera_offset(camera, np.array([0.0, shot_seconds])) * width
        self.lo = int(math.floor(min(0.0, cams.min())))
        self.canvas = np.zeros((height, int(math.ceil(cams.max() - self.lo)) + width + 1), np.float32)
        self.t = -1.0  # stamped up to this time
        self.step = 1 / (4 * fps)

    def frames(
        self,
        obj: Obj,
        objects: list[Obj],
        t: np.ndarray,
        aspect: float,
        width: int,
        height: int,
        cam_px: np.ndarray,
        ys: np.ndarray,
    ) -> np.ndarray:
        out = np.empty((len(t), height, width), np.float32)
        for i, ti in enumerate(t):
            first = 0.0 if self.t < 0 else self.t + self.step
            stamps = np.arange(first, ti + 1e-9, self.step)
            if self.t < ti and len(stamps) == 0:
                stamps = np.array([ti])
            if len(stamps):
                tr = object_track(obj, stamps, aspect, objects)
                ext = obj.extent * min(width, height) * tr.scale
                px = tr.x * width - self.lo
                c0 = max(0, int(math.floor((px - ext).min())) - 1)
                c1 = min(self.canvas.shape[1], int(math.ceil((px + ext).max())) + 2)
                if c1 > c0:
                    xs = np.arange(c0, c1, dtype=np.float32) + 0.5
                    cov = _coverage(obj.shape, px, tr.y * height, ext, tr.angle, xs, ys)
                    np.maximum(self.canvas[:, c0:c1], cov.max(axis=0), out=self.canvas[:, c0:c1])
                self.t = float(stamps[-1])
            s = int(np.rint(cam_px[i])) - self.lo
            out[i] = self.canvas[:, s : s + width]
        return out


def _draw_shot(
    scene: Scene,
    k: int,
    t: np.ndarray,
    width: int,
    height: int,
    bg: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    trails: dict[tuple[int, int], _Trail],
) -> np.ndarray:
    shot = scene.shots[k]
    cam_px = camera_offset(shot.camera, t) * width
    frames = np.broadcast_to(bg, (len(t), height, width, 3)).copy()
    for j, obj in enumerate(shot.objects):  # trails first: they are painted on the background
        if obj.trail:
            trail = trails[(k, j)]
            a = trail.frames(obj, shot.objects, t, scene.aspect, width, height, cam_px, ys)
            frames += (spec.TRAIL_OPACITY * a)[..., None] * (_rgb(obj) - frames)
    for obj in shot.objects:  # list order is z-order: later objects in front
        a = _object_coverage(obj, shot.objects, t, scene.aspect, width, height, cam_px, xs, ys)
        frames += a[..., None] * (_rgb(obj) - frames)
    return frames


def _rgb(obj: Obj) -> np.ndarray:
    return np.array(spec.COLOURS[obj.colour], dtype=np.float32)
