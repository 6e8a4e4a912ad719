"""conv3x3: a 3x3 convolution, stride 1, zero padding 1, with bias (RT4KSR's head, its
re-parameterised blocks and its upsampling convolution)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sr_ops import _validate as v


def _check(x, weight, bias):
    v.tensor(x, "x", dims=4, doc="(B, Cin, H, W)")
    v.tensor(weight, "weight", dims=4, doc="(Cout, Cin, 3, 3)")
    v.tensor(bias, "bias", dims=1, doc="(Cout,)")
    if tuple(weight.shape[1:]) != (x.shape[1], 3, 3):
        raise ValueError(f"weight must have shape (Cout, Cin, 3, 3) with Cin = x.shape[1] = {x.shape[1]}, "
                         f"got {tuple(weight.shape)}")
    if bias.shape[0] != weight.shape[0]:
        raise ValueError(f"bias must have shape (Cout,) = ({weight.shape[0]},), got {tuple(bias.shape)}")
    v.same_device(weight, "weight", x, "x")
    v.same_device(bias, "bias", x, "x")


def _padded_taps_poison(out, weight):
    """Adds NaN at the border pixels where a non-finite weight tap meets the zero padding.
    F.conv2d's float32 kernels (oneDNN on larger maps, and maybe cuDNN) skip padded taps, so
    such a pixel stayed finite where the direct sum gives 0 * inf = NaN (as float64 F.conv2d
    and the Winograd kernel do). Row 0 meets the padding through the taps ky = 0, the last row
    through ky = 2, the columns likewise with kx: four (Cout,) flags from the weights, no copy
    of x and no host synchronisation (the flags add 0 where the taps are finite)."""
    bad = ~torch.isfinite(weight).all(1)  # (Cout, 3, 3)
    nan = torch.tensor(float("nan"), dtype=out.dtype, device=out.device)

    def poison(flags):  # (Cout,) -> (Cout, 1): NaN where a padded tap is non-finite, else 0
        return torch.where(flags, nan, torch.zeros((), dtype=out.dtype, device=out.device))[:, None]

    out[:, :, 0, :] += poison(bad[:, 0, :].any(-1))
    out[:, :, -1, :] += poison(bad[:, 2, :].any(-1))
    out[:, :, :, 0] += poison(bad[:, :, 0].any(-1))
    out[:, :, :, -1] += poison(bad[:, :, 2].any(-1))
    return out


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x (B, Cin, H, W), weight (Cout, Cin, 3, 3), bias (Cout,) -> (B, Cout, H, W) in x's
    dtype: ``F.conv2d(x, weight, bias, padding=1)`` computed in the promoted dtype of the three,
    the padded zeros multiplied as any other input (0 * inf = NaN); with no input channels, the
    bias at every pixel (F.conv2d returns no output channels then); an empty map for zero sizes
    (where F.conv2d raises)."""
    _check(x, weight, bias)
    dtype = torch.promote_types(torch.promote_types(x.dtype, weight.dtype), bias.dtype)
    b, _, h, w = x.shape
    if x.shape[1] == 0 or b * h * w * weight.shape[0] == 0:
        return bias.to(dtype).view(1, -1, 1, 1).expand(b, -1, h, w).clone().to(x.dtype)
    wd = weight.to(dtype)
    out = F.conv2d(x.to(dtype), wd, bias.to(dtype), padding=1)
    return _padded_taps_poison(out, wd).to(x.dtype)
