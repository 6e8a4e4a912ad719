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


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x (B, Cin, H, W), weight (Cout, Cin, 3, 3), bias (Cout,) -> (B, Cout, H, W):
    ``F.conv2d(x, weight, bias, padding=1)`` in the promoted dtype of the three; with no
    input channels, the bias at every pixel (F.conv2d returns no output channels then)."""
    _check(x, weight, bias)
    dtype = torch.promote_types(torch.promote_types(x.dtype, weight.dtype), bias.dtype)
    if x.shape[1] == 0:
        b, _, h, w = x.shape
        return bias.to(dtype).view(1, -1, 1, 1).expand(b, -1, h, w).clone()
    return F.conv2d(x.to(dtype), weight.to(dtype), bias.to(dtype), padding=1)
