"""LayerNorm2d (NAFNet): normalise over the channels at each pixel of a (B, C, H, W) map."""
from __future__ import annotations

import torch

from sr_ops import _validate as v


def _check(x, weight, bias, eps):
    v.tensor(x, "x", dims=4, doc="(B, C, H, W)")
    C = v.channels(x, "x", "layernorm2d")
    for t, name in [(weight, "weight"), (bias, "bias")]:
        v.tensor(t, name)
        v.shape(t, name, (C,), "(C,)")
        v.same_device(t, name, x, "x")
    v.eps(eps)


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
