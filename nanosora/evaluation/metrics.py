"""Image quality: PSNR and SSIM over video frames, in torch so that SSIM is also a loss.

SSIM follows Wang et al. 2004: an 11x11 Gaussian window with sigma 1.5, K1 = 0.01,
K2 = 0.03, on each colour channel of each frame, averaged. It matches scikit-image's
`structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`
(tests/test_vae.py checks that).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def _frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) or (C, T, H, W) -> (B*T, C, H, W)."""
    if x.ndim == 4:
        x = x[None]
    return rearrange(x, "b c t h w -> (b t) c h w")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> float:
    """PSNR in dB over the whole batch (mean squared error pooled over every pixel)."""
    mse = F.mse_loss(x.float(), y.float()).item()
    return float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(data_range**2 / mse)).item()


def _gaussian(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0, reduce: bool = True) -> torch.Tensor:
    """Mean SSIM of video tensors (values in a range of width `data_range`). Differentiable.
    Frames smaller than the window use a window that fits."""
    a, b = _frames(x).float(), _frames(y).float()
    c = a.shape[1]
    size = min(11, a.shape[-1], a.shape[-2])
    size -= 1 - size % 2  # odd
    g = _gaussian(size).to(a)
    win_h = g.view(1, 1, size, 1).repeat(c, 1, 1, 1)
    win_w = g.view(1, 1, 1, size).repeat(c, 1, 1, 1)

    def blur(t):  # separable Gaussian, 'valid' like scikit-image's cropped mean
        return F.conv2d(F.conv2d(t, win_h, groups=c), win_w, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    saa = blur(a * a) - mu_a**2
    sbb = blur(b * b) - mu_b**2
    sab = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return s.mean() if reduce else s.mean(dim=(1, 2, 3))
