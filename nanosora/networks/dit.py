"""The diffusion transformer over spacetime latent patches (Peebles & Xie 2023; Sora report).

Per block: adaLN-zero modulation from the timestep (plus pooled text), full 3D
self-attention over every patch of every frame with QK-norm and 3D rotary positions split
over (t, h, w), cross-attention to the text tokens, and an MLP. The input is
[noisy latents, frame mask, conditioning latents] on channels, so one model serves text,
image and video prompts: the mask marks latent frames whose clean latents are given.

Rotary positions are integer grid coordinates, so any grid works, including sizes,
durations and aspect ratios never seen in training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from nanosora.generation import reference
from nanosora.networks.conditioning import Conditioning
from nanosora.networks.layout import region_mask, self_region_mask


@dataclass(frozen=True)
class DiTConfig:
    latent_channels: int = 16
    patch: tuple[int, int, int] = (1, 2, 2)  # (time, height, width) in latent pixels
    dim: int = 192
    depth: int = 6
    heads: int = 3
    mlp_ratio: float = 4.0
    text_dim: int = 384  # MiniLM's width
    rope_theta: float = 100.0  # latent grids are small: a short base keeps low frequencies useful
    # The flow schedule shift at flow.REF_POSITIONS latent positions, for training and sampling alike.
    # Flatland is flat colour with small objects: at shift 1 the layout is settled at noise
    # levels the model rarely trained on (an edit from t = 0.85 failed where t = 0.7 passed),
    # so the default preset trains and samples at 3, as SD3 does for its redundant images.
    flow_shift: float = 1.0
    # Token routing in training (TREAD, Krause et al. 2025, arXiv 2501.04765): blocks
    # route[0] to route[1] - 1 see a random `route_keep` share of the tokens, the others skip
    # them and rejoin unchanged after; every token still gets the loss. It makes fine tokens
    # affordable: those middle blocks cost a fraction. Sampling uses every token in every
    # block. (0, 0): no routing.
    route: tuple[int, int] = (0, 0)
    route_keep: float = 0.5
    # Per-object layouts (layout.py): each object's sentence embedding, through a zero-
    # initialised projection, added to the tokens its box covers; a model without it ignores
    # a layout it is given.
    layout: bool = False
    # Regional cross-attention (layout.region_mask): with a layout that names each object's
    # words, a token inside an object's box reads only that object's words and the shared
    # ones. Read at sampling; a layout without words leaves attention whole.
    regions: bool = False
    # Regional self-attention too (layout.self_region_mask): a token inside one object's box
    # attends to no token inside another object's box (Bounded Attention), against two
    # objects melting into one where they meet. Needs regions.
    regions_self: bool = False

    @property
    def routes(self) -> bool:
        return self.route[1] > self.route[0]

    def validate(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        hd = self.dim // self.heads
        if hd % 2 or hd < 6:
            raise ValueError(
                f"head width {hd} (dim / heads) must be even and at least 6 for 3D rotary positions"
            )
        if any(p < 1 for p in self.patch) or len(self.patch) != 3:
            raise ValueError(f"patch {self.patch} must be three sizes of 1 or more (time, height, width)")
        if not self.flow_shift > 0:
            raise ValueError(f"flow_shift {self.flow_shift} must be positive")
        start, end = self.route
        if len(self.route) != 2 or self.routes and not 0 <= start < end <= self.depth:
            raise ValueError(f"route {self.route} must be two block indices 0 <= start < end <= depth")
        if not 0 < self.route_keep <= 1:
            raise ValueError(f"route_keep {self.route_keep} must be in (0, 1]")
        if self.regions and not self.layout:
            raise ValueError("regions bound attention by a layout: a config with regions needs layout")
        if self.regions_self and not self.regions:
            raise ValueError("regions_self bounds self-attention by the same layout: it needs regions")
        if self.depth < 1 or self.latent_channels < 1 or self.text_dim < 1:
            raise ValueError(f"invalid DiT config: {self}")


DIT_PRESETS: dict[str, DiTConfig] = {
    "tiny": DiTConfig(latent_channels=4, dim=64, depth=2, heads=2, text_dim=384),
    # the shipped design: 2x2 patches on the 8x latent (4x4 tokens a 64x64 frame), width 192
    "default": DiTConfig(flow_shift=3.0),
    # World model v2's candidate (docs/world-model-v2.md): 1x1 patches give 8x8 tokens a
    # frame, so an object has several tokens and two that meet need not share one; the
    # narrower width and routing half the tokens past blocks 1-4 in training pay for them
    "v2": DiTConfig(flow_shift=3.0, patch=(1, 1, 1), dim=128, heads=2, route=(1, 5)),
    # for GPUs; their configs build on the meta device for planning and tests
    "base": DiTConfig(dim=768, depth=8, heads=12),  # about 107M parameters
    "large": DiTConfig(dim=1536, depth=19, heads=16),  # about 1.0B parameters
}


def rope_split(head_dim: int) -> tuple[int, int, int]:
    """Rotary pairs per axis: height and width get equal shares, time the rest (all even)."""
    pairs = head_dim // 2
    hw = pairs // 3
    return (2 * (pairs - 2 * hw), 2 * hw, 2 * hw)


def rope_angles(grid: tuple[int, int, int], head_dim: int, theta: float, device=None) -> torch.Tensor:
    """(N, head_dim / 2) rotation angles for a (t, h, w) grid of tokens, row-major."""
    parts = []
    axes = torch.meshgrid(*[torch.arange(n, device=device, dtype=torch.float32) for n in grid], indexing="ij")
    for pos, d in zip(axes, rope_split(head_dim), strict=True):
        if d == 0:
            continue
        freqs = theta ** (-torch.arange(0, d, 2, device=device, dtype=torch.float32) / d)
        parts.append(pos.reshape(-1, 1) * freqs)
    return torch.cat(parts, 1)


def rope_rotation(angles: torch.Tensor) -> torch.Tensor:
    """cos and sin of the angles, (2, ..., N, D/2): made once per forward pass and shared by
    every block (computing them per attention call cost a tenth of a sampling step). Real
    numbers rather than complex ones, so that torch.compile fuses the rotation."""
    return torch.stack([angles.cos(), angles.sin()])


def apply_rope(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs (x1, x2) of x (B, H, N, D) by the angles of `rotation`
    (rope_rotation's cos and sin, (2, N, D/2) or per sample (2, B, 1, N, D/2))."""
    cos, sin = rotation[0], rotation[1]
    pairs = x.float().unflatten(-1, (-1, 2))
    x1, x2 = pairs[..., 0], pairs[..., 1]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).flatten(-2).type_as(x)


def attention(q, k, v, mask=None):
    """Scaled dot-product attention; mask (B, 1, 1, L) bool, True where a key may be seen.

    When training under CPU bf16 autocast it is written out as two matmuls with the softmax
    in fp32: torch's fused CPU kernels (flash and math alike) are 3-6x slower in bf16 than
    that at these lengths (80-320 tokens, head width 64; measured forward plus backward),
    which cost a fifth of a training step. Without gradients (sampling) the fused kernel is
    the faster one in bf16 too (forward, batch 2: 0.13 against 0.21 ms at 80 tokens, 24
    against 53 ms at 1,280), as it is in fp32 and on GPUs."""
    if q.device.type != "cpu" or not torch.is_autocast_enabled("cpu") or not torch.is_grad_enabled():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = torch.matmul(q, k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.float().softmax(-1)
    return torch.matmul(weights.to(torch.get_autocast_dtype("cpu")), v)


def attention_with_map(q, k, v, mask=None):
    """attention(), written out so that its weights can be read: (output, the weights
    averaged over heads (B, Nq, Nk) in fp32). For training with grounding losses
    (grounding.py), which supervise those weights."""
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(-1)
    return torch.matmul(weights.to(v.dtype), v), weights.mean(1)


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.RMSNorm(dim // heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(dim // heads, eps=1e-6)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, rotation, maps: bool = False, mask=None):
        """x (B, N, D), mask None or (B, N, N) bool, True where a token may read another ->
        (output, head-averaged weights if `maps` else None)."""
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        # norms in fp32 (a no-op without autocast; under bf16 autocast they keep their precision)
        q, k = apply_rope(self.q_norm(q.float()), rotation), apply_rope(self.k_norm(k.float()), rotation)
        m = None if mask is None else mask[:, None]
        o, w = attention_with_map(q, k, v, m) if maps else (attention(q, k, v, m), None)
        return self.out(rearrange(o, "b h n d -> b n (h d)")), w


class CrossAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.q_norm = nn.RMSNorm(dim // heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(dim // heads, eps=1e-6)
        self.out = nn.Linear(dim, dim)

    def keys_values(self, ctx):  # ctx (B, L, D) -> normed keys and values, (B, H, L, d) each
        k, v = rearrange(self.kv(ctx), "b l (two h d) -> two b h l d", two=2, h=self.heads)
        return self.k_norm(k.float()), v

    def forward(self, x, kv, ctx_mask, maps: bool = False):
        """x (B, N, D), kv from keys_values, ctx_mask (B, L) or per token (B, N, L) bool ->
        (output, head-averaged weights if `maps` else None)."""
        q = self.q_norm(rearrange(self.q(x), "b n (h d) -> b h n d", h=self.heads).float())
        m = ctx_mask[:, None] if ctx_mask.ndim == 3 else ctx_mask[:, None, None, :]
        o, w = attention_with_map(q, *kv, mask=m) if maps else (attention(q, *kv, mask=m), None)
        return self.out(rearrange(o, "b h n d -> b n (h d)")), w


class Block(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        d = cfg.dim
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(d, cfg.heads)
        self.norm_x = nn.LayerNorm(d, eps=1e-6)
        self.cross = CrossAttention(d, cfg.heads)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        hidden = int(d * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d))
        self.ada = nn.Linear(d, 6 * d)

    def forward(self, x, c, kv, ctx_mask, rotation, maps: bool = False, self_mask=None):
        """kv: (keys, values), or the text tokens; self_mask: None or (B, N, N) bool. -> (x,
        (self (B, N, N), cross (B, N, L)) attention weights averaged over heads, each None
        unless `maps`)."""
        if isinstance(kv, torch.Tensor):
            kv = self.cross.keys_values(kv)
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(F.silu(c)).chunk(6, dim=1)
        a, self_map = self.attn(modulate(self.norm1(x), sh1, sc1), rotation, maps, self_mask)
        x = x + g1[:, None] * a
        r, cross_map = self.cross(self.norm_x(x), kv, ctx_mask, maps)
        x = x + r
        return x + g2[:, None] * self.mlp(modulate(self.norm2(x), sh2, sc2)), (self_map, cross_map)


def timestep_embedding(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of t in [0, 1], scaled to [0, 1000] as in DDPM-era models."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], 1)


class TextContext(NamedTuple):
    """What the text contributes to every forward pass, made by DiT.text_context. It depends
    on the prompt alone, so a sampler makes it once and reuses it at every step (the text
    projection and each block's cross-attention keys and values are then not recomputed)."""

    pooled: torch.Tensor  # (B, D): pooled prompt, projected; added to the timestep vector
    ctx: torch.Tensor  # (B, L, D): the projected text tokens
    # per block: cross-attention keys and values, (B, H, L, d) each; None: each block makes
    # its own from ctx inside its forward (as training must under FSDP2, where a block's
    # weights are whole only while the block runs)
    kv: list[tuple[torch.Tensor, torch.Tensor]] | None
    mask: torch.Tensor  # (B, L) bool

    def rows(self, n: int) -> TextContext:
        """The context of the first n prompts of the batch."""
        kv = [(k[:n], v[:n]) for k, v in self.kv] if self.kv is not None else None
        return TextContext(self.pooled[:n], self.ctx[:n], kv, self.mask[:n])


class DiT(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        c, (pt, ph, pw), d = cfg.latent_channels, cfg.patch, cfg.dim
        self.patch_in = nn.Linear((2 * c + 1) * pt * ph * pw, d)
        self.t_embed = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))
        self.text_proj = nn.Sequential(
            nn.Linear(cfg.text_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d)
        )
        self.pool_proj = nn.Linear(cfg.text_dim, d)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(d, 2 * d)
        self.patch_out = nn.Linear(d, c * pt * ph * pw)
        self.layout_proj = nn.Linear(cfg.text_dim, d) if cfg.layout else None
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier for linear layers; zero for every adaLN modulation and the output layer, so
        each block starts as the identity and the model starts by predicting zero (DiT, 3.2)."""
        if self.patch_in.weight.is_meta:  # to be filled from a file (modeldir): nothing to draw
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for blk in self.blocks:
            nn.init.zeros_(blk.ada.weight)
            nn.init.zeros_(blk.ada.bias)
        # zero: a layout starts by changing nothing (a fine-tune starts as the model it tunes)
        for m in (self.ada_out, self.patch_out, *([self.layout_proj] if self.layout_proj else [])):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def grid(self, latent_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """The token grid for latents (C, T, h, w) or (B, C, T, h, w); an error if it does not fit."""
        t, h, w = latent_shape[-3:]
        pt, ph, pw = self.cfg.patch
        if t % pt or h % ph or w % pw:
            raise ValueError(
                f"latent grid {t}x{h}x{w} (frames x height x width) is not divisible by the patch "
                f"{pt}x{ph}x{pw}"
            )
        return t // pt, h // ph, w // pw

    def text_context(
        self, text: torch.Tensor, text_mask: torch.Tensor, keys_values: bool = True
    ) -> TextContext:
        """The prompt's part of the computation, for text (B, L, text_dim) with a (B, L) mask;
        `keys_values`: every block's cross-attention keys and values too."""
        # an all-padding row would make attention undefined: let it attend to its first slot
        text_mask = text_mask.bool().clone()
        text_mask[:, 0] |= ~text_mask.any(1)
        pooled = (text * text_mask[..., None]).sum(1) / text_mask.sum(1, keepdim=True).clamp_min(1)
        ctx = self.text_proj(text)  # (B, L, D)
        kv = [blk.cross.keys_values(ctx) for blk in self.blocks] if keys_values else None
        return TextContext(self.pool_proj(pooled), ctx, kv, text_mask)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        text: torch.Tensor | TextContext,
        text_mask: torch.Tensor | None = None,
        cond: Conditioning | None = None,
        vec: torch.Tensor | None = None,
        maps: bool = False,
        **blocks,
    ):
        """Velocity for x (B, C, T, h, w) at times t (B,). text (B, L, text_dim) with a (B, L)
        mask, or a TextContext made from them once (then text_mask is not needed). cond: the
        conditioning bundle (conditioning.py): clean latents of the given frames (B, C, T, h,
        w) with their frame mask (B, T), 1 where a frame is given, reference.REFERENCE where a
        reference frame stands; per-object layouts. blocks: a subclass's own arguments to
        its blocks (routed.RoutedDiT's route). vec
        (B, D): more conditioning, added to the timestep's and the pooled prompt's (a
        subclass's own input: guided.GuidedDiT's guidance scale). maps: return (velocity,
        every block's attention weights (Block.forward)) instead, for grounding losses in
        training (grounding.py)."""
        b, c, T, h, w = x.shape
        if c != self.cfg.latent_channels:
            raise ValueError(f"latents have {c} channels; this model takes {self.cfg.latent_channels}")
        gt, gh, gw = self.grid(x.shape)
        pt, ph, pw = self.cfg.patch
        cond = Conditioning() if cond is None else cond
        frame_mask = x.new_zeros(b, T) if cond.frame_mask is None else cond.frame_mask
        m = frame_mask.to(x.dtype)[:, None, :, None, None].expand(b, 1, T, h, w)
        # the mask channel says what a latent is (new, given, or a reference frame: reference.py)
        given = x.new_zeros(x.shape) if cond.latents is None else cond.latents * reference.given(m)
        inp = torch.cat([x, m, given], 1)
        tokens = rearrange(inp, "b c (t pt) (h ph) (w pw) -> b (t h w) (c pt ph pw)", pt=pt, ph=ph, pw=pw)
        x_tok = self.patch_in(tokens)  # (B, N, D)
        cov = None
        if cond.layout is not None and self.layout_proj is not None:
            cov = cond.layout.coverage((gt, gh, gw), pt).to(x_tok.dtype)  # (B, K, N)
            objs = self.layout_proj(cond.layout.emb.to(x_tok.dtype))  # (B, K, D)
            x_tok = x_tok + torch.einsum("bkn,bkd->bnd", cov, objs)

        if not isinstance(text, TextContext):
            if text_mask is None:
                raise ValueError("text_mask is needed with text embeddings (or pass a TextContext)")
            text = self.text_context(text, text_mask, keys_values=False)
        self_mask = None
        if self.cfg.regions and cov is not None and cond.layout.words is not None:
            words = cond.layout.words.to(cov.device)
            text = text._replace(mask=region_mask(cov, words, text.mask))
            if self.cfg.regions_self:
                self_mask = self_region_mask(cov, words)
        c_vec = self.t_embed(timestep_embedding(t)) + text.pooled  # (B, D)
        if vec is not None:
            c_vec = c_vec + vec
        angles = rope_angles((gt, gh, gw), self.cfg.dim // self.cfg.heads, self.cfg.rope_theta, x.device)
        x_tok, block_maps = self.run_blocks(x_tok, c_vec, text, angles, maps, self_mask, **blocks)
        shift, scale = self.ada_out(F.silu(c_vec)).chunk(2, dim=1)
        out = self.patch_out(modulate(self.norm_out(x_tok), shift, scale))
        v = rearrange(
            out, "b (t h w) (c pt ph pw) -> b c (t pt) (h ph) (w pw)", t=gt, h=gh, w=gw, pt=pt, ph=ph, pw=pw
        )
        return (v, block_maps) if maps else v

    def run_blocks(
        self, x_tok, c_vec, text: TextContext, angles, maps: bool = False, self_mask=None, **blocks
    ):
        """The tokens through every block: (tokens, each block's attention maps or None).
        self_mask: None or (B, N, N) bool, which tokens each token's self-attention reads."""
        if blocks:
            raise TypeError(
                f"a {type(self).__name__} takes no {', '.join(sorted(blocks))} (routed.RoutedDiT "
                "takes route, guided.GuidedDiT guidance)"
            )
        rotation = rope_rotation(angles)
        block_maps = []
        for blk, kv in zip(self.blocks, text.kv or [text.ctx] * len(self.blocks), strict=True):
            x_tok, m = blk(x_tok, c_vec, kv, text.mask, rotation, maps, self_mask)
            block_maps.append(m)
        return x_tok, block_maps


def count_params(cfg: DiTConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in DiT(cfg).parameters())
