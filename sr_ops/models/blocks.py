"""Layers shared by the reference models."""
from __future__ import annotations

import torch
from torch import nn

import sr_ops

__all__ = ["LayerNorm2d", "layer_norm_2d", "shuffle_clamp_into"]

# Set to False to force the plain-PyTorch LayerNorm2d even when the fused op exists
# (for comparisons and debugging).
USE_FUSED_LAYERNORM = True


def _layer_norm_2d_torch(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                         eps: float) -> torch.Tensor:
    # NAFNet LayerNorm2d: per pixel, over the channel axis; biased variance; eps inside sqrt.
    mu = x.mean(1, keepdim=True)
    var = (x - mu).pow(2).mean(1, keepdim=True)
    y = (x - mu) * torch.rsqrt(var + eps)
    return y * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)


def layer_norm_2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                  eps: float = 1e-6) -> torch.Tensor:
    """Normalise (B, C, H, W) over C at every pixel, then scale and shift per channel.

    Calls the fused op ``sr_ops.layernorm2d`` when the library provides it, otherwise a
    plain-PyTorch definition with the same semantics.  The choice is made per call, so
    the op is picked up as soon as it is registered.
    """
    op = getattr(sr_ops, "layernorm2d", None) if USE_FUSED_LAYERNORM else None
    if op is not None:
        return op(x, weight, bias, eps)
    return _layer_norm_2d_torch(x, weight, bias, eps)


class LayerNorm2d(nn.Module):
    """Channel LayerNorm for NCHW maps, parameters ``weight`` and ``bias`` of shape (C,)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm_2d(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}"


def shuffle_clamp_into(y: torch.Tensor, r: int, out: torch.Tensor | None = None,
                       clamp: bool = True) -> torch.Tensor:
    """PixelShuffle(r) of y (N, C*r*r, H, W), clamped to [0, 1], written in one strided pass
    into ``out`` (N, C, rH, rW) contiguous (allocated when None).  Not differentiable: for
    inference (a separate shuffle, copy and clamp would each sweep the HR output again)."""
    n, crr, h, w = y.shape
    c = crr // (r * r)
    if out is None:
        out = y.new_empty(n, c, r * h, r * w)
    elif out.shape != (n, c, r * h, r * w) or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous {(n, c, r * h, r * w)} tensor, got {tuple(out.shape)}")
    src = y.view(n, c, r, r, h, w).permute(0, 1, 4, 2, 5, 3)
    dst = out.view(n, c, h, r, w, r)
    if clamp:
        torch.clamp(src, 0.0, 1.0, out=dst)
    else:
        dst.copy_(src)
    return out
