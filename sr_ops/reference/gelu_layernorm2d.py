"""gelu_layernorm2d: LayerNorm2d of GELU(x), RT4KSR's activation and the next block's norm."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sr_ops import _validate as v
from sr_ops.reference.layernorm2d import _check as _check_layernorm2d
from sr_ops.reference.layernorm2d import layernorm2d


def _check(x, weight, bias, eps, approximate):
    _check_layernorm2d(x, weight, bias, eps)
    v.choice(approximate, "approximate", ("none", "tanh"), "as F.gelu")


def gelu_layernorm2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-6,
                     approximate: str = "none") -> torch.Tensor:
    """x (B, C, H, W), weight / bias (C,) -> (B, C, H, W) in x's dtype:
    ``layernorm2d(F.gelu(x, approximate=approximate), weight, bias, eps)``, both steps in
    float32 at least."""
    _check(x, weight, bias, eps, approximate)
    dtype = torch.promote_types(torch.promote_types(x.dtype, weight.dtype), torch.float32)
    dtype = torch.promote_types(dtype, bias.dtype)
    g = F.gelu(x.to(dtype), approximate=approximate)
    return layernorm2d(g, weight.to(dtype), bias.to(dtype), eps).to(x.dtype)
