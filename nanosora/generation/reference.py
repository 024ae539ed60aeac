"""Reference frames: what a window is shown of the world besides its temporal context.

A window's given frames (timeline.py) continue in time: they are the frames just before or
after it. A reference frame does not. It comes from across a cut (a frame of the story's
shot before) or from long before (the first frame of a long clip, as StreamingT2V's anchor
frames, arXiv 2403.14773), and it shows who is in the world, each object's colour, shape and
size, not where it is now or where it goes.

    window latents:   [ref][given][given][new][new]...
    frame mask:        -1    1      1     0    0

It is prepended to the window's latents and marked in the frame mask with REFERENCE instead
of 1, so that the transformer can tell "the same objects" from "the next frames"; its loss
weighs nothing. The transformer learns it from cached Flatland clips, each with a frame of
its own scene after a cut (world.sample.after_cut): the same objects, still, somewhere else.
A model trained so says `references` in its config; generation then gives every shot after
the first a frame of the shot before, and every later window of a clip its first frame.
"""

from __future__ import annotations

import numpy as np
import torch

REFERENCE = -1.0  # the frame-mask value of a reference frame (1: a given frame, 0: a new one)


def given(frame_mask: torch.Tensor) -> torch.Tensor:
    """Where the conditioning latents hold something, a given or a reference frame (bool)."""
    return frame_mask != 0


def render(samples, width: int, height: int, rng: np.random.Generator) -> np.ndarray | None:
    """One reference frame per sample, (N, H, W, 3) uint8: its scene after a cut. None when a
    sample shows no Flatland scene (a folder of clips has no scene to recast)."""
    from nanosora.world.render import render as render_scene
    from nanosora.world.sample import after_cut

    if not samples or any(s.scene is None for s in samples):
        return None
    frames = [
        render_scene(after_cut(s.scene, rng, width / height), width, height, 1, 1.0)[0] for s in samples
    ]
    return np.stack(frames)


def prepend(
    latents: torch.Tensor, refs: torch.Tensor, frame_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """latents (B, C, T, h, w) with reference latents (B, C, R, h, w) before them on the time
    axis, and the frame mask (B, T) (None: nothing given) with REFERENCE before it."""
    b, r = latents.shape[0], refs.shape[2]
    if refs.shape[0] != b or refs.shape[1] != latents.shape[1] or refs.shape[3:] != latents.shape[3:]:
        raise ValueError(
            f"reference latents {tuple(refs.shape)} do not fit latents {tuple(latents.shape)} "
            "(same batch, channels and frame size)"
        )
    if frame_mask is None:
        frame_mask = latents.new_zeros(b, latents.shape[2])
    marks = torch.full((b, r), REFERENCE, dtype=frame_mask.dtype, device=frame_mask.device)
    return torch.cat([refs.to(latents), latents], 2), torch.cat([marks, frame_mask], 1)
