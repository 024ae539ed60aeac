"""The causal video autoencoder: frames (1 + 4k, H, W) <-> latents (1 + k, H/8, W/8).

Design, chosen for CPU speed, for trainability and for streaming:
- Space: a plain stack of per-frame convolutions, stride-2 4x4 kernels down and transposed
  ones up, a SiLU after each, no residual blocks and no normalisation. On Flatland this
  learned shapes and colours several times faster than residual blocks with norms (which
  learned luminance first and colour thousands of steps later); with no normalisation
  statistics, a temporal chunk or a spatial tile sees exactly what the whole video would.
- Time: causal convolutions across time (kernel 3, 1x1 in space), two of them with stride
  2, all at the coarsest level where a frame costs least: a factorised (2+1)D network,
  causal by construction like the causal VAEs of CogVideoX and Wan.
- `patch` > 1 pixel-(un)shuffles at both ends (space-to-depth) so that no layer runs at
  full resolution, for speed on large frames.

Streaming: every causal time convolution keeps the input frames it has not yet consumed in
a `state` dict. Calling the network once on a whole clip, or chunk by chunk with the same
dict, runs the same arithmetic, so chunked encoding and decoding equal the unchunked result
while memory stays bounded by the chunk size. The first frame is encoded alone (zero
padding in front of it), so an image is a one-frame video.

Tensors at the public interface are (B, C, T, H, W); inside, (B, T, C, H, W) so that a
per-frame convolution is a free `view` to (B*T, C, H, W).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from nanosora.config import VAEConfig


class FrameConv(nn.Module):
    """A 2D convolution applied to every frame (transposed: a learned 2x upsampling)."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, transposed: bool = False):
        super().__init__()
        if transposed:
            self.conv = nn.ConvTranspose2d(cin, cout, k, stride, (k - stride) // 2)
        else:
            self.conv = nn.Conv2d(cin, cout, k, stride, (k - stride + 1) // 2)

    def forward(self, x, state=None):  # (B, T, C, H, W)
        b = x.shape[0]
        return self.conv(x.flatten(0, 1)).unflatten(0, (b, -1))


class CausalTimeConv(nn.Module):
    """A causal convolution across time (1x1 in space) with stride, streaming.

    Output j reads padded inputs [j*stride, j*stride + k), where the padding is k - 1 zero
    frames in front of frame 0. Whatever input has not been consumed waits in `state`
    for the next call, so any split of the input into chunks gives the same outputs.
    """

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, skip: bool = True, space: int = 1):
        super().__init__()
        self.k, self.stride, self.skip = k, stride, skip and cin == cout
        # space > 1: a full 3D kernel (k x space x space), which can move content between frames
        self.proj = nn.Conv2d(cin * k, cout, space, padding=space // 2)

    def forward(self, x, state: dict):  # (B, T, C, H, W)
        buf = state.get(self)
        if buf is None:
            buf = x.new_zeros(x.shape[0], self.k - 1, *x.shape[2:])
        xp = torch.cat([buf, x], 1)
        n = max(0, (xp.shape[1] - self.k) // self.stride + 1)
        # clone: a slice would keep the whole chunk's storage alive between calls
        state[self] = xp[:, n * self.stride :].clone()
        if n == 0:
            return x.new_zeros(x.shape[0], 0, self.proj.out_channels, *x.shape[3:])
        last = (n - 1) * self.stride + 1
        windows = [xp[:, j : j + last : self.stride] for j in range(self.k)]
        y = self.proj(torch.cat(windows, 2).flatten(0, 1)).unflatten(0, (x.shape[0], n))
        # skip path: the newest frame of each window, so the layer starts as the identity
        # (its projection is zero-initialised) and learns only what time adds
        return y + windows[-1] if self.skip else y


class TimeUp(nn.Module):
    """Each frame becomes two, except the very first frame of a stream, which stays one:
    1 + k frames -> 1 + 2k, mirroring a stride-2 CausalTimeConv."""

    def __init__(self, c: int, space: int = 1):
        super().__init__()
        self.conv = CausalTimeConv(c, 2 * c, k=3, space=space)

    def forward(self, x, state):
        # each frame repeated (nearest in time) plus a learned, zero-initialised correction
        y = self.conv(x, state) + torch.cat([x, x], 2)
        y = rearrange(y, "b t (two c) h w -> b (t two) c h w", two=2)
        if (self, "started") not in state:
            state[(self, "started")] = True
            y = y[:, 1:]
        return y


class _Stack(nn.Module):
    """Layers that share the streaming state, with a SiLU after every layer but the last."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x, state):
        for i, layer in enumerate(self.layers):
            x = layer(x, state)
            if i + 1 < len(self.layers):
                x = F.silu(x)
        return x


def _encoder(cfg: VAEConfig) -> _Stack:
    w = cfg.widths
    layers: list[nn.Module] = [FrameConv(3 * cfg.patch**2, w[0])]
    layers += [FrameConv(w[i], w[i + 1], 4, stride=2) for i in range(len(w) - 1)]
    for _ in range(cfg.time_downs):
        sp = cfg.time_space
        layers += [CausalTimeConv(w[-1], w[-1], space=sp), CausalTimeConv(w[-1], w[-1], stride=2, space=sp)]
    layers += [FrameConv(w[-1], w[-1]) for _ in range(cfg.enc_blocks)]
    layers.append(FrameConv(w[-1], 2 * cfg.latent_channels))
    return _Stack(layers)


def _decoder(cfg: VAEConfig) -> _Stack:
    w = cfg.widths
    layers: list[nn.Module] = [FrameConv(cfg.latent_channels, w[-1])]
    layers += [FrameConv(w[-1], w[-1]) for _ in range(cfg.dec_blocks)]
    for _ in range(cfg.time_downs):
        layers += [TimeUp(w[-1], cfg.time_space), CausalTimeConv(w[-1], w[-1], space=cfg.time_space)]
    layers += [FrameConv(w[i + 1], w[i], 4, stride=2, transposed=True) for i in reversed(range(len(w) - 1))]
    layers.append(FrameConv(w[0], 3 * cfg.patch**2))
    return _Stack(layers)


class VideoVAE(nn.Module):
    """Videos are float tensors in [-1, 1], (B, 3, T, H, W) with T = 1 + 4k; latents are
    (B, C, 1 + k, H/8, W/8), normalised by the config's shift and scale."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.encoder = _encoder(cfg)
        self.decoder = _decoder(cfg)
        self.initialize_weights()
        n = cfg.latent_channels
        shift = torch.tensor(cfg.shift) if cfg.shift else torch.zeros(n)
        scale = torch.tensor(cfg.scale) if cfg.scale else torch.ones(n)
        # buffers, not parameters: they come from the config, not from training
        self.register_buffer("shift", shift.float().view(1, n, 1, 1, 1), persistent=False)
        self.register_buffer("scale", scale.float().view(1, n, 1, 1, 1), persistent=False)

    def initialize_weights(self) -> None:
        """He initialisation for every convolution. PyTorch's default shrinks the signal by
        about 1/sqrt(3) a layer; through 20 layers with no normalisation that left the
        network near zero and training stalled for hundreds of steps."""
        if next(self.parameters()).is_meta:  # built to be filled from a file: nothing to
            return  # draw (and on the meta device a random draw imports torch's compiler)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", mode="fan_in")
                nn.init.zeros_(m.bias)
        # time layers start as the identity (or nearest-neighbour repetition): the network
        # begins as a per-frame autoencoder, which learns fast, and adds time mixing
        for m in self.modules():
            if isinstance(m, CausalTimeConv) and (
                m.skip or m.proj.out_channels == 2 * m.proj.in_channels // m.k
            ):
                nn.init.zeros_(m.proj.weight)

    # ---- checks -------------------------------------------------------------------------
    def check_video(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"video must be (batch, 3, frames, height, width); got {tuple(x.shape)}")
        t, h, w = x.shape[2:]
        check_frames(t, self.cfg.time_factor)
        check_size(h, w, self.cfg.space_factor)

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        check_frames(frames, self.cfg.time_factor)
        check_size(height, width, self.cfg.space_factor)
        f, s = self.cfg.time_factor, self.cfg.space_factor
        return (self.cfg.latent_channels, 1 + (frames - 1) // f, height // s, width // s)

    # ---- raw streaming steps (internal layout) ------------------------------------------
    def _encode_step(self, x, state):  # (B, 3, t, H, W) -> mean, logvar (B, C, t', h, w)
        p = self.cfg.patch
        x = rearrange(x, "b c t (h p1) (w p2) -> b t (c p1 p2) h w", p1=p, p2=p)
        m = self.encoder(x, state)
        mean, logvar = rearrange(m, "b t c h w -> b c t h w").chunk(2, dim=1)
        # The posterior's log-variance is capped at LOGVAR_MAX (std <= 0.05). Uncapped, the
        # small KL term still drives the variance up under Adam (which rescales even a tiny
        # steady gradient to full-size steps), the sampling noise drowns the latent, and the
        # decoder learns to ignore it and paint only the background (posterior collapse).
        return mean, (LOGVAR_MAX - F.softplus(logvar)).clamp_min(-30.0)

    def _decode_step(self, z, state):  # (B, C, t', h, w) -> (B, 3, t, H, W)
        p = self.cfg.patch
        y = self.decoder(rearrange(z, "b c t h w -> b t c h w"), state)
        return rearrange(y, "b t (c p1 p2) h w -> b c t (h p1) (w p2)", p1=p, p2=p)

    def _time_chunks(self, t: int, chunk: int | None, factor: int) -> Iterator[slice]:
        """The first frame alone, then chunks of `chunk` groups of `factor` frames."""
        yield slice(0, 1)
        step = factor * (chunk or max(1, (t - 1) // factor))
        for s in range(1, t, step):
            yield slice(s, min(t, s + step))

    # ---- public API ---------------------------------------------------------------------
    def encode_dist(self, x: torch.Tensor, chunk: int | None = None):
        """Posterior mean and log-variance of the raw (unnormalised) latents. `chunk`: latent
        frames per encoder call (None: the whole clip at once)."""
        self.check_video(x)
        state: dict = {}
        parts = [self._encode_step(x[:, :, sl], state) for sl in self._time_chunks(x.shape[2], chunk, 4)]
        return torch.cat([m for m, _ in parts], 2), torch.cat([v for _, v in parts], 2)

    def encode(self, x: torch.Tensor, chunk: int | None = 4) -> torch.Tensor:
        """Normalised latents (the posterior mean)."""
        mean, _ = self.encode_dist(x, chunk)
        return self.normalize(mean)

    def normalize(self, z):
        return (z - self.shift) / self.scale

    def denormalize(self, z):
        return z * self.scale + self.shift

    def decode_chunks(
        self, z: torch.Tensor, chunk: int | None = 4, tile: int | None = None
    ) -> Iterator[torch.Tensor]:
        """Yield the decoded video in pieces along time, (B, 3, t, H, W) in [-1, 1]: memory is
        bounded by `chunk` latent frames however long the clip. With `tile` (latent pixels),
        frames larger than a tile are decoded in overlapping spatial tiles."""
        if z.ndim != 5 or z.shape[1] != self.cfg.latent_channels:
            raise ValueError(
                f"latents must be (batch, {self.cfg.latent_channels}, frames, height, width); "
                f"got {tuple(z.shape)}"
            )
        z = self.denormalize(z)
        tiles = _tiles(z.shape[3], z.shape[4], tile)
        states: list[dict] = [{} for _ in tiles]
        for sl in self._time_chunks(z.shape[2], chunk, 1):
            zc = z[:, :, sl]
            if len(tiles) == 1:
                yield self._decode_step(zc, states[0])
            else:
                yield self._blend(zc, tiles, states)

    def decode(self, z: torch.Tensor, chunk: int | None = 4, tile: int | None = None) -> torch.Tensor:
        return torch.cat(list(self.decode_chunks(z, chunk, tile)), 2)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """Training pass: reconstruction, posterior mean and log-variance (raw latents)."""
        mean, logvar = self.encode_dist(x, chunk=None)
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
        z = mean + torch.exp(0.5 * logvar) * eps
        state: dict = {}
        return self._decode_step(z, state), mean, logvar

    # ---- spatial tiles ------------------------------------------------------------------
    def _blend(self, z, tiles, states):
        s = self.cfg.space_factor
        b, _, t, h, w = z.shape
        out = acc = None
        for (y0, y1, x0, x1), st in zip(tiles, states, strict=True):
            y = self._decode_step(z[:, :, :, y0:y1, x0:x1], st)
            if out is None:
                out = y.new_zeros(b, 3, y.shape[2], h * s, w * s)
                acc = y.new_zeros(1, 1, 1, h * s, w * s)
            wgt = _ramp(y1 - y0, y0 > 0, y1 < h, s)[:, None] * _ramp(x1 - x0, x0 > 0, x1 < w, s)[None, :]
            wgt = wgt.to(y)
            out[..., y0 * s : y1 * s, x0 * s : x1 * s] += y * wgt
            acc[..., y0 * s : y1 * s, x0 * s : x1 * s] += wgt
        return out / acc


LOGVAR_MAX = -6.0
TILE_OVERLAP = 4  # latent pixels shared by neighbouring tiles, blended linearly


def _tiles(h: int, w: int, tile: int | None) -> list[tuple[int, int, int, int]]:
    if tile is None or (h <= tile and w <= tile):
        return [(0, h, 0, w)]
    if tile <= 2 * TILE_OVERLAP:
        raise ValueError(f"tile {tile} is too small: use more than {2 * TILE_OVERLAP} latent pixels")

    def starts(n):
        if n <= tile:
            return [0]
        step = tile - TILE_OVERLAP
        s = list(range(0, n - tile, step))
        return s + [n - tile]

    return [(y, min(h, y + tile), x, min(w, x + tile)) for y in starts(h) for x in starts(w)]


def _ramp(n: int, fade_in: bool, fade_out: bool, s: int) -> torch.Tensor:
    """Blend weights over n latent pixels (n * s output pixels): a linear ramp across the
    overlap at each side that has a neighbour, flat 1 elsewhere."""
    m, o = n * s, TILE_OVERLAP * s
    r = torch.ones(m)
    ramp = (torch.arange(o) + 0.5) / o
    if fade_in:
        r[:o] = torch.minimum(r[:o], ramp)
    if fade_out:
        r[m - o :] = torch.minimum(r[m - o :], ramp.flip(0))
    return r


def check_frames(t: int, factor: int = 4) -> None:
    if t < 1 or (t - 1) % factor:
        raise ValueError(
            f"a clip of {t} frames cannot be encoded: the autoencoder takes 1 + {factor}k frames "
            f"(1, {1 + factor}, {1 + 2 * factor}, {1 + 4 * factor}, ...)"
        )


def check_size(h: int, w: int, factor: int = 8) -> None:
    m = max(16, factor)
    if h < m or w < m or h % m or w % m:
        raise ValueError(f"frame size {w}x{h} is not valid: width and height must be multiples of {m}")


def frames_to_tensor(frames) -> torch.Tensor:
    """uint8 (T, H, W, 3) array -> float (1, 3, T, H, W) in [-1, 1]."""
    x = torch.as_tensor(frames).float().div(127.5).sub(1.0)
    return rearrange(x, "t h w c -> 1 c t h w")


def tensor_to_frames(x: torch.Tensor):
    """float (3, T, H, W) in [-1, 1] -> uint8 (T, H, W, 3) numpy array."""
    x = x.detach().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return rearrange(x, "c t h w -> t h w c").cpu().numpy()
