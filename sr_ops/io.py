"""Image file helpers shared by tests, models and the CLI."""

from __future__ import annotations

from os import PathLike

import numpy as np
import torch
from PIL import Image

__all__ = ["read_image", "to_uint8"]


def read_image(path: str | PathLike) -> torch.Tensor:
    """Read an image file as a float32 tensor of shape (3, H, W) in [0, 1].

    Greyscale, palette and RGBA files are converted to RGB (alpha dropped), so
    every caller sees three channels.
    """
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(rgb / 255.0).permute(2, 0, 1).contiguous()


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Quantise an image in [0, 1] to uint8 levels, any shape.

    Values are clamped to [0, 1] and scaled by 255, then rounded half away from
    zero as MATLAB's ``im2uint8`` does (torch.round would round half to even);
    for the non-negative values left after clamping that is ``floor(v + 0.5)``.
    NaN maps to 0.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {_describe(x)}")
    # Half precision cannot represent v + 0.5 exactly near 255.
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    x = torch.nan_to_num(x, nan=0.0).clamp(0.0, 1.0)
    return torch.floor(x * 255.0 + 0.5).to(torch.uint8)


def _describe(x: object) -> str:
    return f"tensor of dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
