"""PSNR and SSIM under the standard super-resolution evaluation protocol.

Both metrics follow BasicSR's ``calculate_psnr`` / ``calculate_ssim``: the
images are quantised to 8-bit levels, optionally reduced to the BT.601 luma
(Y) channel, cropped by ``crop_border`` pixels on every side and compared on
the 0-255 scale in float64. Published SR tables use exactly this, so numbers
computed here are comparable with them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .io import to_uint8

__all__ = ["psnr", "ssim", "rgb_to_y"]

# BT.601 luma for RGB in [0, 1], giving Y on the 0-255 scale in [16, 235].
_Y_WEIGHTS = (65.481, 128.553, 24.966)

_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_C1 = (0.01 * 255) ** 2
_SSIM_C2 = (0.03 * 255) ** 2


def rgb_to_y(rgb: torch.Tensor) -> torch.Tensor:
    """Luma of (..., 3, H, W) RGB in [0, 1] as (..., 1, H, W) on the 0-255 scale."""
    w = torch.tensor(_Y_WEIGHTS, dtype=rgb.dtype, device=rgb.device)
    return 16.0 + torch.einsum("...chw,c->...hw", rgb, w).unsqueeze(-3)


def _prepare(sr: torch.Tensor, hr: torch.Tensor, crop_border: int, y_channel: bool,
             min_size: int = 1) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Validate, quantise, convert and crop; returns float64 (B, C, h, w) on 0-255."""
    for name, t in (("sr", sr), ("hr", hr)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor")
        if t.dim() not in (3, 4):
            raise ValueError(f"{name} must have shape (B, C, H, W) or (C, H, W), got {tuple(t.shape)}")
    if sr.shape != hr.shape:
        raise ValueError(f"sr and hr must have the same shape, got {tuple(sr.shape)} and {tuple(hr.shape)}")
    if y_channel and sr.shape[-3] != 3:
        raise ValueError(f"sr must have 3 (RGB) channels when y_channel=True, got {sr.shape[-3]}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise ValueError(f"crop_border must be a non-negative int, got {crop_border!r}")
    h, w = sr.shape[-2] - 2 * crop_border, sr.shape[-1] - 2 * crop_border
    if min(h, w) < min_size:
        raise ValueError(f"crop_border={crop_border} leaves {h}x{w} pixels of a "
                         f"{sr.shape[-2]}x{sr.shape[-1]} image; need at least {min_size}x{min_size}")

    single = sr.dim() == 3
    out = []
    for t in (sr, hr):
        t = t.unsqueeze(0) if single else t
        # Scores are defined on the saved 8-bit images, not on raw network output.
        t = to_uint8(t).to(torch.float64)
        t = rgb_to_y(t / 255.0) if y_channel else t
        if crop_border:
            t = t[..., crop_border:-crop_border, crop_border:-crop_border]
        out.append(t)
    return out[0], out[1], single


def psnr(sr: torch.Tensor, hr: torch.Tensor, crop_border: int, y_channel: bool = True) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, peak 255.

    Args:
        sr, hr: images in [0, 1], (B, 3, H, W) or (3, H, W) (any C if not y_channel).
        crop_border: pixels removed from every side before comparing (usually the scale).
        y_channel: compare the luma channel only (the SR convention) instead of RGB.

    Returns:
        float64 tensor (B,), or 0-dim for a single image; ``inf`` where the images match.
    """
    a, b, single = _prepare(sr, hr, crop_border, y_channel)
    mse = (a - b).pow(2).mean(dim=(1, 2, 3))
    out = 10.0 * torch.log10(255.0**2 / mse)  # mse == 0 gives inf
    return out[0] if single else out


def _gaussian_1d(device: torch.device) -> torch.Tensor:
    """Normalised 11-tap Gaussian (sigma 1.5), float64."""
    r = _SSIM_WINDOW // 2
    x = torch.arange(-r, r + 1, dtype=torch.float64, device=device)
    g = torch.exp(-(x * x) / (2 * _SSIM_SIGMA**2))
    return g / g.sum()


def _blur_valid(t: torch.Tensor) -> torch.Tensor:
    """Gaussian-weighted local mean of (N, 1, H, W), "valid" region (H-10, W-10).

    The 11x11 window is the outer product of two 1-D Gaussians, so two 1-D
    passes give the same result as the 2-D filter at a fraction of the cost
    (float64 2-D convolution is slow on the CPU).
    """
    g = _gaussian_1d(t.device)
    t = F.conv2d(t, g.view(1, 1, -1, 1))
    return F.conv2d(t, g.view(1, 1, 1, -1))


def ssim(sr: torch.Tensor, hr: torch.Tensor, crop_border: int, y_channel: bool = True) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004), mean of the SSIM map.

    Local statistics use an 11x11 Gaussian window (sigma 1.5) over the "valid"
    region only (no padding); with several channels the per-channel SSIMs are
    averaged. Arguments as for :func:`psnr`; the cropped image must be at least
    11x11.

    Returns:
        float64 tensor (B,), or 0-dim for a single image; 1 where the images match.
    """
    a, b, single = _prepare(sr, hr, crop_border, y_channel, min_size=_SSIM_WINDOW)
    n, c, h, w = a.shape
    # Treat each channel as a separate image so one 1-channel kernel serves all.
    a = a.reshape(n * c, 1, h, w)
    b = b.reshape(n * c, 1, h, w)
    # One batched blur for all five local statistics.
    stats = _blur_valid(torch.cat([a, b, a * a, b * b, a * b]))
    mu_a, mu_b, aa, bb, ab = stats.split(n * c)
    var_a = aa - mu_a * mu_a
    var_b = bb - mu_b * mu_b
    cov = ab - mu_a * mu_b
    num = (2 * mu_a * mu_b + _SSIM_C1) * (2 * cov + _SSIM_C2)
    den = (mu_a * mu_a + mu_b * mu_b + _SSIM_C1) * (var_a + var_b + _SSIM_C2)
    per_channel = (num / den).mean(dim=(1, 2, 3)).reshape(n, c)
    out = per_channel.mean(dim=1)
    return out[0] if single else out
