"""The causal video autoencoder: shapes, causality, streaming, tiles, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nanosora.config import VAE_PRESETS
from nanosora.networks.vae import CausalTimeConv, VideoVAE, check_frames


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    m = VideoVAE(VAE_PRESETS["tiny"]).eval()
    # time layers start as the identity; give them weights so that time really mixes
    for layer in m.modules():
        if isinstance(layer, CausalTimeConv):
            torch.nn.init.normal_(layer.proj.weight, std=0.2)
    return m


def video(t, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, t, h, w, generator=g) * 2 - 1


@pytest.mark.parametrize("t,h,w", [(1, 16, 16), (5, 32, 48), (9, 64, 32), (17, 16, 64), (13, 48, 48)])
def test_shapes_for_valid_sizes_and_durations(vae, t, h, w):
    x = video(t, h, w)
    with torch.no_grad():
        z = vae.encode(x)
        assert tuple(z.shape[1:]) == vae.latent_shape(t, h, w) == (4, 1 + (t - 1) // 4, h // 8, w // 8)
        assert vae.decode(z).shape == x.shape


def test_causality_changing_frame_k_changes_no_earlier_latent(vae):
    x = video(17, 32, 32)
    with torch.no_grad():
        z = vae.encode(x)
        for k in (0, 1, 4, 5, 9, 16):
            y = x.clone()
            y[:, :, k] = -y[:, :, k]
            zk = vae.encode(y)
            chunk = (k + 3) // 4  # frame 0 alone, then frames 1-4, 5-8, ...
            assert torch.equal(zk[:, :, :chunk], z[:, :, :chunk]), k
            assert not torch.allclose(zk[:, :, chunk], z[:, :, chunk]), k


def test_decoder_is_causal_too(vae):
    z = torch.randn(1, 4, 5, 4, 4)
    with torch.no_grad():
        y = vae.decode(z)
        z2 = z.clone()
        z2[:, :, 3] += 1
        y2 = vae.decode(z2)
    assert torch.equal(y[:, :, : 1 + 4 * 2], y2[:, :, : 1 + 4 * 2])  # frames of latents 0-2
    assert not torch.allclose(y[:, :, 9:13], y2[:, :, 9:13])


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunked_equals_unchunked(vae, chunk):
    x = video(25, 32, 48, seed=1)
    with torch.no_grad():
        z_full = vae.encode(x, chunk=None)
        z_chunk = vae.encode(x, chunk=chunk)
        torch.testing.assert_close(z_chunk, z_full, atol=1e-5, rtol=1e-5)
        y_full = vae.decode(z_full, chunk=None)
        y_chunk = vae.decode(z_full, chunk=chunk)
        torch.testing.assert_close(y_chunk, y_full, atol=1e-5, rtol=1e-5)
        pieces = list(vae.decode_chunks(z_full, chunk=chunk))
    assert [p.shape[2] for p in pieces][0] == 1  # the first frame comes out alone
    assert sum(p.shape[2] for p in pieces) == 25


def test_image_is_a_one_frame_video(vae):
    """An image encodes to exactly the first latent of any clip that starts with it, and
    decodes back to one frame."""
    x = video(9, 32, 32, seed=2)
    with torch.no_grad():
        z_img = vae.encode(x[:, :, :1])
        z_vid = vae.encode(x)
        assert z_img.shape[2] == 1
        torch.testing.assert_close(z_img[:, :, 0], z_vid[:, :, 0], atol=1e-6, rtol=1e-6)
        y = vae.decode(z_img)
    assert y.shape == (1, 3, 1, 32, 32)


def test_tiled_decode_matches_untiled_away_from_seams(vae):
    z = torch.randn(1, 4, 2, 24, 24)
    with torch.no_grad():
        full = vae.decode(z)
        tiled = vae.decode(z, tile=12)
    assert tiled.shape == full.shape
    # the corners are covered by one tile only, far from any seam: identical there
    torch.testing.assert_close(tiled[..., :24, :24], full[..., :24, :24], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tiled[..., -24:, -24:], full[..., -24:, -24:], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(tiled).all()


@pytest.mark.parametrize("t", [0, 2, 4, 8, 16])
def test_wrong_frame_count_is_refused(vae, t):
    with pytest.raises(ValueError, match=r"1 \+ 4k frames"):
        vae.encode(video(max(t, 1), 16, 16) if t else torch.zeros(1, 3, 0, 16, 16))
    with pytest.raises(ValueError, match=r"1 \+ 4k"):
        check_frames(t)


@pytest.mark.parametrize("h,w", [(20, 32), (32, 8), (0, 16), (64, 72)])
def test_size_not_multiple_of_16_is_refused(vae, h, w):
    with pytest.raises(ValueError, match="multiples of 16"):
        vae.encode(torch.zeros(1, 3, 1, h, w))


def test_bad_latent_shape_is_refused(vae):
    with pytest.raises(ValueError, match="latents must be"):
        vae.decode(torch.zeros(1, 3, 2, 4, 4))
    with pytest.raises(ValueError, match="tile .* too small"):
        vae.decode(torch.zeros(1, 4, 1, 16, 16), tile=4)


def test_ssim_matches_scikit_image():
    from skimage.metrics import structural_similarity

    from nanosora.evaluation.metrics import psnr, ssim

    rng = np.random.default_rng(0)
    a = rng.random((40, 48, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    ref = structural_similarity(
        a, b, channel_axis=2, data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    ta = torch.tensor(a).permute(2, 0, 1)[:, None]
    tb = torch.tensor(b).permute(2, 0, 1)[:, None]
    assert abs(ssim(ta, tb, data_range=1).item() - ref) < 1e-5
    mse = np.mean((a - b) ** 2)
    assert abs(psnr(ta, tb, data_range=1) - 10 * np.log10(1 / mse)) < 1e-3
