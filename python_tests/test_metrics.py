"""Tests for PSNR / SSIM under the standard SR protocol."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sr_ops.imresize import imresize
from sr_ops.io import read_image, to_uint8
from sr_ops.metrics import psnr, ssim

ASSETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "assets"
SELFEXSR_SET5 = ASSETS / "datasets" / "SelfExSR" / "Set5"


def _levels(*shape: int, seed: int = 0) -> torch.Tensor:
    """Random image already on 8-bit levels, so quantisation leaves it unchanged."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g).double() / 255


def _reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Direct SSIM of two (H, W) float64 arrays on the 0-255 scale.

    Written independently of sr_ops: explicit 11x11 windows over the valid region.
    """
    x = np.arange(11) - 5.0
    g = np.exp(-x**2 / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    pa = np.lib.stride_tricks.sliding_window_view(a, (11, 11))
    pb = np.lib.stride_tricks.sliding_window_view(b, (11, 11))
    mu_a = (pa * win).sum(axis=(-1, -2))
    mu_b = (pb * win).sum(axis=(-1, -2))
    var_a = ((pa - mu_a[..., None, None]) ** 2 * win).sum(axis=(-1, -2))
    var_b = ((pb - mu_b[..., None, None]) ** 2 * win).sum(axis=(-1, -2))
    cov = ((pa - mu_a[..., None, None]) * (pb - mu_b[..., None, None]) * win).sum(axis=(-1, -2))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    m = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(m.mean())


def _y(rgb: torch.Tensor) -> np.ndarray:
    """BT.601 luma of a (3, H, W) image in [0, 1], on the 0-255 scale."""
    r, g, b = rgb.double().numpy()
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


# ---------------------------------------------------------------- PSNR


def test_psnr_identical_is_inf():
    x = _levels(2, 3, 16, 16)
    out = psnr(x, x.clone(), crop_border=2)
    assert out.shape == (2,) and out.dtype == torch.float64
    assert torch.isinf(out).all() and (out > 0).all()


def test_psnr_constant_offset_rgb_and_y():
    # Grey images: every channel differs by d levels, so the RGB MSE is d^2 and
    # the Y difference is d * (65.481 + 128.553 + 24.966) / 255 = d * 219 / 255.
    hr = torch.full((2, 3, 12, 12), 100 / 255, dtype=torch.float64)
    sr = hr.clone()
    sr[0] += 3 / 255
    sr[1] -= 10 / 255
    rgb = psnr(sr, hr, crop_border=0, y_channel=False)
    torch.testing.assert_close(rgb, torch.tensor([10 * math.log10(255**2 / 9), 10 * math.log10(255**2 / 100)],
                                                 dtype=torch.float64))
    y = psnr(sr, hr, crop_border=0)
    torch.testing.assert_close(y - rgb, torch.full((2,), 20 * math.log10(255 / 219), dtype=torch.float64))


def test_psnr_quantises_and_clamps_first():
    hr = _levels(1, 3, 8, 8)
    # Less than half a level off: the same 8-bit image.
    assert torch.isinf(psnr(hr + 0.4 / 255, hr, 0)).all()
    # Out-of-range values count as 0 / 255.
    assert torch.isinf(psnr(torch.full_like(hr, 1.7), torch.ones_like(hr), 0)).all()
    assert torch.isinf(psnr(torch.full_like(hr, -0.2), torch.zeros_like(hr), 0)).all()
    # Float32 input gives the same score as float64.
    sr = _levels(1, 3, 8, 8, seed=5)
    torch.testing.assert_close(psnr(sr.float(), hr.float(), 1), psnr(sr, hr, 1))


def test_psnr_y_matches_direct_computation():
    sr, hr = _levels(3, 20, 24, seed=1), _levels(3, 20, 24, seed=2)
    out = psnr(sr, hr, crop_border=3)
    assert out.dim() == 0
    mse = np.mean((_y(sr) - _y(hr))[3:-3, 3:-3] ** 2)
    assert out.item() == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-10)


def test_psnr_crop_border():
    hr = _levels(1, 3, 20, 20)
    sr = hr.clone()
    sr[..., :, :3] = 1 - sr[..., :, :3]  # damage only the 3 leftmost columns
    assert torch.isinf(psnr(sr, hr, crop_border=3)).all()
    assert torch.isfinite(psnr(sr, hr, crop_border=2)).all()


# ---------------------------------------------------------------- SSIM


def test_ssim_identical_is_one():
    x = _levels(2, 3, 32, 30)
    for y_channel in (True, False):
        torch.testing.assert_close(ssim(x, x.clone(), 4, y_channel), torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("y_channel", [True, False])
def test_ssim_matches_reference(y_channel):
    hr = _levels(2, 3, 29, 34, seed=3)
    sr = (hr + 0.08 * torch.randn(hr.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64))
    sr = to_uint8(sr).double() / 255
    out = ssim(sr, hr, crop_border=2, y_channel=y_channel)
    for i in range(2):
        if y_channel:
            expected = _reference_ssim(_y(sr[i])[2:-2, 2:-2], _y(hr[i])[2:-2, 2:-2])
        else:
            planes = zip(sr[i].numpy() * 255, hr[i].numpy() * 255)
            expected = np.mean([_reference_ssim(a[2:-2, 2:-2], b[2:-2, 2:-2]) for a, b in planes])
        assert out[i].item() == pytest.approx(expected, abs=1e-10)
        assert 0.1 < expected < 0.99  # a meaningful, non-degenerate comparison


def test_ssim_single_image_crop_and_symmetry():
    hr = _levels(3, 40, 40, seed=6)
    sr = hr.clone()
    sr[:, :8] = 1 - sr[:, :8]  # damage only the top 8 rows
    assert ssim(sr, hr, 8).dim() == 0
    assert ssim(sr, hr, 8).item() == pytest.approx(1.0, abs=1e-12)
    assert ssim(sr, hr, 3).item() < 0.99
    assert ssim(sr, hr, 3).item() == pytest.approx(ssim(hr, sr, 3).item(), abs=1e-12)


# ---------------------------------------------------------------- argument checks


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_bad_arguments(metric):
    good = _levels(1, 3, 24, 24)
    with pytest.raises(ValueError, match="sr must have shape"):
        metric(good[0, 0], good[0, 0], 0)
    with pytest.raises(ValueError, match="hr must have shape"):
        metric(good, good[0, 0], 0)
    with pytest.raises(ValueError, match="same shape"):
        metric(good, good[..., :20], 0)
    with pytest.raises(ValueError, match="channels"):
        metric(good[:, :1], good[:, :1], 0)
    with pytest.raises(ValueError, match="crop_border"):
        metric(good, good, -1)
    with pytest.raises(ValueError, match="crop_border"):
        metric(good, good, 12)
    with pytest.raises(TypeError, match="sr"):
        metric(to_uint8(good), good, 0)
    # One grey channel is fine when not converting to Y.
    assert metric(good[:, :1], good[:, :1], 0, y_channel=False).shape == (1,)


def test_ssim_needs_an_11x11_region():
    x = _levels(1, 3, 20, 20)
    assert ssim(x, x, 4).shape == (1,)  # 12x12 left
    with pytest.raises(ValueError, match="crop_border"):
        ssim(x, x, 5)  # 10x10 left


# ---------------------------------------------------------------- published numbers


@pytest.mark.parametrize("scale,published,independent", [(2, 33.66, 33.68), (4, 28.42, 28.43)])
def test_set5_bicubic_psnr(scale, published, independent):
    folder = SELFEXSR_SET5 / f"image_SRF_{scale}"
    if not folder.is_dir():
        pytest.skip(f"SelfExSR Set5 images not found at {folder} (shared assets absent)")
    scores = []
    for hr_path in sorted(folder.glob("*_HR.png")):
        hr = read_image(hr_path)
        lr = to_uint8(imresize(hr, 1 / scale)).float() / 255
        sr = imresize(lr, scale)
        assert sr.shape == hr.shape
        scores.append(psnr(sr, hr, crop_border=scale).item())
    assert len(scores) == 5
    mean = sum(scores) / len(scores)
    assert abs(mean - published) < 0.05, f"Set5 x{scale} bicubic: {mean:.4f} dB"
    assert abs(mean - independent) < 0.01, f"Set5 x{scale} bicubic: {mean:.4f} dB"
