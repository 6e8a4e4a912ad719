"""LayerNorm2d (NAFNet): normalise over the channels at each pixel of a (B, C, H, W) map."""
from __future__ import annotations

import math

import torch


def _check(x, weight, bias, eps):
    for t, name in [(x, "x"), (weight, "weight"), (bias, "bias")]:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if x.dim() != 4:
        raise ValueError(f"x must have 4 dims (B, C, H, W), got shape {tuple(x.shape)}")
    C = x.shape[1]
    if C == 0:
        raise ValueError(f"x has no channels (shape {tuple(x.shape)}); layernorm2d needs C >= 1")
    for t, name in [(weight, "weight"), (bias, "bias")]:
        if t.shape != (C,):
            raise ValueError(f"{name} must have shape (C,) = ({C},), got {tuple(t.shape)}")
        if t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x on {x.device}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite non-negative number, got {eps!r}")


def layernorm2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x (B, C, H, W), weight / bias (C,) -> (B, C, H, W) in x's dtype:
    `(x - mu) / sqrt(var + eps) * weight[c] + bias[c]`, mu and the biased variance over C
    at each pixel. Computed in float32 at least."""
    _check(x, weight, bias, eps)
    dtype = torch.promote_types(torch.promote_types(x.dtype, weight.dtype), torch.float32)
    dtype = torch.promote_types(dtype, bias.dtype)
    xf = x.to(dtype)
    mu = xf.mean(1, keepdim=True)
    var = (xf - mu).pow(2).mean(1, keepdim=True)
    y = (xf - mu) / torch.sqrt(var + eps)
    y = y * weight.to(dtype)[:, None, None] + bias.to(dtype)[:, None, None]
    return y.to(x.dtype)
