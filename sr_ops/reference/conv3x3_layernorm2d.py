"""conv3x3_layernorm2d: layernorm2d of a 3x3 convolution's output (after GELU when asked),
RT4KSR's head -> norm and block -> GELU -> next norm."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sr_ops import _validate as v
from sr_ops.reference.conv3x3 import _check as _check_conv
from sr_ops.reference.conv3x3 import conv3x3
from sr_ops.reference.layernorm2d import layernorm2d


def _check(x, weight, bias, norm_weight, norm_bias, eps, gelu):
    _check_conv(x, weight, bias)
    cout = weight.shape[0]
    if cout == 0:
        raise ValueError(f"weight must have at least one output channel (the norm needs Cout >= 1), "
                         f"got shape {tuple(weight.shape)}")
    for t, name in [(norm_weight, "norm_weight"), (norm_bias, "norm_bias")]:
        v.tensor(t, name, dims=1, doc="(Cout,)")
        v.shape(t, name, (cout,), "(Cout,)")
        v.same_device(t, name, x, "x")
    v.eps(eps)
    v.boolean(gelu, "gelu")


def conv3x3_layernorm2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, norm_weight: torch.Tensor,
                        norm_bias: torch.Tensor, eps: float = 1e-6, gelu: bool = False) -> torch.Tensor:
    """x (B, Cin, H, W), weight (Cout, Cin, 3, 3), bias / norm_weight / norm_bias (Cout,) ->
    (B, Cout, H, W) in x's dtype: ``layernorm2d(act(conv3x3(x, weight, bias)), norm_weight,
    norm_bias, eps)``, act the exact (erf) GELU when gelu, else the identity. Computed in the
    promoted dtype of the five, float32 at least, and rounded once: a float16 convolution
    rounded before the norm loses ~1e-3 of its mean, which the norm divides by the spread."""
    _check(x, weight, bias, norm_weight, norm_bias, eps, gelu)
    dtype = torch.float32
    for t in (x, weight, bias, norm_weight, norm_bias):
        dtype = torch.promote_types(dtype, t.dtype)
    z = conv3x3(x.to(dtype), weight.to(dtype), bias.to(dtype))
    if gelu:
        z = F.gelu(z)
    return layernorm2d(z, norm_weight.to(dtype), norm_bias.to(dtype), eps).to(x.dtype)
