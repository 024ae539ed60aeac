"""The conditioning bundle: everything the transformer is given besides noise, time and text.

One typed value travels from the request to the sampler and into the transformer (in the
spirit of flux's dictionaries of prepared inputs), so a new kind of conditioning is a field
here and the code that reads it, not a parameter threaded through every signature:

- `latents` and `frame_mask`: clean latents of given frames (image, extend, connect, loop)
  and, per latent frame, 1 where one is given, reference.REFERENCE where a reference frame
  stands, 0 where the frame is to be made;
- `layout`: each object's words and boxes per latent frame (layout.py).

Guidance's passes see different parts of it (`for_passes`): the "full" pass everything, the
"cond" pass the given frames only, the "none" pass nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from nanosora.generation import reference
from nanosora.networks.layout import Layout


@dataclass(frozen=True)
class Conditioning:
    latents: torch.Tensor | None = None  # (B, C, T, h, w)
    frame_mask: torch.Tensor | None = None  # (B, T)
    layout: Layout | None = None

    def __post_init__(self):
        if (self.latents is None) != (self.frame_mask is None):
            raise ValueError("given latents and their frame mask come together (or neither)")

    @property
    def has_given(self) -> bool:
        return self.frame_mask is not None and bool(reference.given(self.frame_mask).any())

    def with_references(self, refs: torch.Tensor, shape: tuple[int, ...]) -> Conditioning:
        """Reference latents (B, C, R, h, w) placed before a window of latent `shape`
        (C, T, h, w); the layout gets R empty frames before its own."""
        b = refs.shape[0]
        lat = torch.zeros(b, *shape) if self.latents is None else self.latents
        latents, fm = reference.prepend(lat, refs, self.frame_mask)
        layout = None if self.layout is None else self.layout.prepend_empty(refs.shape[2])
        return Conditioning(latents, fm, layout)

    def for_passes(self, modes: tuple[str, ...], frames: int) -> Conditioning:
        """The bundle for one batch of guidance passes, rows pass by pass (flow.guidance_modes):
        given frames in every pass but "none", the layout (words, like the text) in "full" only."""
        b = self._batch()
        if b is None:
            return self
        fm = latents = layout = None
        if self.has_given:
            zeros = self.frame_mask.new_zeros(b, frames)
            fm = torch.cat([self.frame_mask if m != "none" else zeros for m in modes])
            latents = self.latents.repeat(len(modes), 1, 1, 1, 1)
        if self.layout is not None:
            drop = torch.tensor([m != "full" for m in modes for _ in range(b)])
            layout = self.layout.repeat(len(modes)).dropped(drop)
        return Conditioning(latents, fm, layout)

    def rows(self, n: int) -> Conditioning:
        """The bundle of the first n rows of the batch."""
        return Conditioning(
            None if self.latents is None else self.latents[:n],
            None if self.frame_mask is None else self.frame_mask[:n],
            None if self.layout is None else self.layout.rows(slice(0, n)),
        )

    def to(self, device) -> Conditioning:
        return Conditioning(
            None if self.latents is None else self.latents.to(device),
            None if self.frame_mask is None else self.frame_mask.to(device),
            None if self.layout is None else self.layout.to(device),
        )

    def with_layout(self, layout: Layout | None) -> Conditioning:
        return replace(self, layout=layout)

    def _batch(self) -> int | None:
        if self.frame_mask is not None:
            return self.frame_mask.shape[0]
        if self.layout is not None:
            return self.layout.boxes.shape[0]
        return None
