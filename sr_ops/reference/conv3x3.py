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


def _pad_explicitly(x, weight):
    """Whether the zero padding must be multiplied in, not skipped. F.conv2d's float32 CPU
    kernels (oneDNN on larger maps) skip the padded taps, so an inf or NaN weight tap that only
    meets the padding leaves a border pixel finite, where 0 * inf = NaN by the direct sum (and
    by float64 F.conv2d, and the Winograd kernel). Only a non-finite weight can tell: the
    check is free on the CPU; elsewhere we pad (one copy of x) rather than synchronise."""
    return x.device.type != "cpu" or not bool(torch.isfinite(weight).all())


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
    xd, wd, bd = x.to(dtype), weight.to(dtype), bias.to(dtype)
    if _pad_explicitly(xd, wd):
        # F.pad keeps x's layout, so a channels-last x still takes oneDNN's channels-last path
        return F.conv2d(F.pad(xd, (1, 1, 1, 1)), wd, bd).to(x.dtype)
    return F.conv2d(xd, wd, bd, padding=1).to(x.dtype)
