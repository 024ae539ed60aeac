"""A guidance-distilled transformer: the one seam through which guidance distillation reaches
generation (its training is distill.py).

Classifier-free guidance evaluates the transformer twice a step; a guidance-distilled one
(Meng et al. 2023; FLUX.1-dev ships its model this way) also takes the guidance scale,
embedded like the timestep, and gives the guided velocity in one pass. GuidedDiT is a DiT
with that embedding; dit.py, flow.py and the pipeline know only that a transformer may take
a `guidance` scale, which `one_pass_serves` tells them. Not shipped: measured, it loses more
validation clips than its speed is worth (docs/measurements.md).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nanosora.generation import flow
from nanosora.networks.dit import DiT, timestep_embedding

# guidance scales map to timestep_embedding's [0, 1] range as (g - 1) / GUIDANCE_RANGE: 1 (no
# guidance) is 0, and the scales distillation trains on (1-13) stay within about [0, 1]
GUIDANCE_RANGE = 12.0


def guidance_coordinate(g: torch.Tensor) -> torch.Tensor:
    return (g - 1.0) / GUIDANCE_RANGE


class GuidedDiT(DiT):
    """A DiT that also takes the guidance scale. Its embedding starts at zero, so a GuidedDiT
    made from a trained DiT's weights starts as exactly that DiT."""

    # read through wrappers (device.CPUBF16, torch.compile) as any attribute of the model
    guides_in_one_pass = True

    def __init__(self, cfg):
        super().__init__(cfg)
        d = cfg.dim
        self.g_embed = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))
        nn.init.xavier_uniform_(self.g_embed[0].weight)  # as DiT initialises its linear layers
        nn.init.zeros_(self.g_embed[0].bias)
        nn.init.zeros_(self.g_embed[-1].weight)
        nn.init.zeros_(self.g_embed[-1].bias)

    def forward(self, x, t, text, text_mask=None, cond=None, guidance=None, **blocks):
        """DiT.forward, at guidance scale `guidance` (B,) (None: 1, no guidance)."""
        g = x.new_ones(x.shape[0]) if guidance is None else guidance.to(x.dtype)
        vec = self.g_embed(timestep_embedding(guidance_coordinate(g)))
        return super().forward(x, t, text, text_mask, cond, vec=vec, **blocks)


def one_pass_serves(dit, cond_guidance: float = 1.0, has_cond: bool = False) -> bool:
    """Whether a transformer gives guided velocities in one pass: a guidance-distilled one,
    for text guidance, which is all it was distilled for (with given frames: guidance
    towards the prompt with the frames kept, cond_guidance 1)."""
    return bool(getattr(dit, "guides_in_one_pass", False)) and (not has_cond or cond_guidance == 1.0)


def velocity(model_fn: Callable[[torch.Tensor, float, float], torch.Tensor], guidance: float, until: float):
    """Guidance from a guidance-distilled transformer: model_fn(x, t, g) is its velocity at
    scale g, one pass a step; the scale is `guidance` while t > until, then 1 (unguided), the
    same interval as flow.guided."""

    def fn(x, t):
        return model_fn(x, t, guidance if flow.is_guided(t, until) else 1.0)

    return fn
