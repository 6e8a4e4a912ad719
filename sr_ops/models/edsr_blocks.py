"""Building blocks of EDSR / MDSR (Lim et al., CVPRW 2017), with the official module layout.

Sub-module indices match sanghyun-son/EDSR-PyTorch ``src/model/common.py`` so that state
dicts of models built from these blocks use the official key names:

* ``MeanShift``: a frozen 1x1 conv 3 -> 3 (keys ``weight`` (3, 3, 1, 1), ``bias`` (3,)).
* ``ResBlock``: ``body.0`` conv, ``body.1`` ReLU, ``body.2`` conv; out = x + res_scale * body(x).
* ``Upsampler``: scale 2^n -> n pairs (``{2i}`` conv C -> 4C, ``{2i+1}`` PixelShuffle(2));
  scale 3 -> ``0`` conv C -> 9C, ``1`` PixelShuffle(3).

Shapes: every block maps (B, C, H, W) -> (B, C, H, W), except ``Upsampler``:
(B, C, H, W) -> (B, C, s*H, s*W), and ``MeanShift``: (B, 3, H, W) -> (B, 3, H, W).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["DIV2K_RGB_MEAN", "MeanShift", "ResBlock", "Upsampler", "default_conv"]

#: Mean RGB of DIV2K (in [0, 1]) that every EDSR-family model subtracts.
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def default_conv(in_channels: int, out_channels: int, kernel_size: int,
                 bias: bool = True) -> nn.Conv2d:
    """kxk conv with zero padding k // 2 (size-preserving for odd k)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class MeanShift(nn.Conv2d):
    """y = (x + sign * rgb_range * mean) / std, per channel, as a frozen 1x1 conv.

    Kept a conv (not a buffer pair) because the official checkpoints store its
    ``weight`` and ``bias``; ``sign=-1`` subtracts the mean (``sub_mean``), ``+1`` adds it.
    """

    def __init__(self, rgb_range: float = 255.0, rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
                 rgb_std: Sequence[float] = (1.0, 1.0, 1.0), sign: int = -1) -> None:
        if sign not in (-1, 1):
            raise ValueError(f"sign must be -1 or 1, got {sign!r}")
        if len(rgb_mean) != 3 or len(rgb_std) != 3:
            raise ValueError(f"rgb_mean and rgb_std must have 3 entries, got "
                             f"{len(rgb_mean)} and {len(rgb_std)}")
        if any(s <= 0 for s in rgb_std):
            raise ValueError(f"rgb_std must be positive, got {tuple(rgb_std)}")
        super().__init__(3, 3, kernel_size=1)
        std = torch.tensor(rgb_std, dtype=torch.float32)
        mean = torch.tensor(rgb_mean, dtype=torch.float32)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1))
            self.bias.copy_(sign * rgb_range * mean / std)
        # constants, not learnt (the official model freezes them too)
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)


class ResBlock(nn.Module):
    """conv -> ReLU -> conv, scaled by ``res_scale`` and added to the input."""

    def __init__(self, n_feats: int, kernel_size: int = 3, res_scale: float = 1.0,
                 bias: bool = True) -> None:
        super().__init__()
        if n_feats < 1 or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"need n_feats >= 1 and an odd kernel_size, got "
                             f"n_feats={n_feats}, kernel_size={kernel_size}")
        self.body = nn.Sequential(
            default_conv(n_feats, n_feats, kernel_size, bias),
            nn.ReLU(inplace=True),
            default_conv(n_feats, n_feats, kernel_size, bias),
        )
        self.res_scale = float(res_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.body(x)
        if self.res_scale != 1.0:
            res = res * self.res_scale
        return res + x


class Upsampler(nn.Sequential):
    """Sub-pixel upsampling by ``scale`` in {1, 2, 4, 8, ...} or 3 (no activation, no norm).

    ``scale=1`` is the identity (an empty Sequential), convenient for denoising variants.
    """

    def __init__(self, scale: int, n_feats: int, kernel_size: int = 3, bias: bool = True) -> None:
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
            raise ValueError(f"scale must be a positive int, got {scale!r}")
        layers: list[nn.Module] = []
        if scale & (scale - 1) == 0:  # power of two
            for _ in range(scale.bit_length() - 1):
                layers += [default_conv(n_feats, 4 * n_feats, kernel_size, bias), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [default_conv(n_feats, 9 * n_feats, kernel_size, bias), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"scale must be a power of two or 3, got {scale}")
        super().__init__(*layers)
