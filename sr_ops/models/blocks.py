"""Layers shared by the reference models."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import sr_ops

__all__ = ["LayerNorm2d", "conv3x3", "layer_norm_2d", "shuffle_clamp", "shuffle_clamp_into"]

# Set to False to force the plain-PyTorch LayerNorm2d even when the fused op exists
# (for comparisons and debugging).
USE_FUSED_LAYERNORM = True
# Likewise for sr_ops.conv3x3 in place of a plain 3x3 nn.Conv2d (conv3x3 below).
USE_FUSED_CONV3X3 = True


def _plain_3x3(conv: nn.Conv2d) -> bool:
    return (conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.bias is not None
            and conv.padding_mode == "zeros")


def conv3x3(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)``, through ``sr_ops.conv3x3`` (Winograd; faster than oneDNN's direct
    convolution on AVX2 CPUs) when x is a float32 CPU map and conv a 3x3, stride-1,
    zero-padding-1 convolution with bias; ``conv(x)`` itself otherwise (other devices and
    dtypes gain nothing from the op)."""
    if (USE_FUSED_CONV3X3 and x.device.type == "cpu" and x.dtype == torch.float32
            and conv.weight.dtype == torch.float32 and _plain_3x3(conv)):
        return sr_ops.conv3x3(x, conv.weight, conv.bias)
    return conv(x)


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


@torch.library.custom_op("sr_ops_models::shuffle_clamp", mutates_args=())
def _shuffle_clamp_op(y: torch.Tensor, r: int, clamp: bool) -> torch.Tensor:
    return shuffle_clamp_into(y, r, clamp=clamp)


@_shuffle_clamp_op.register_fake
def _(y, r, clamp):
    n, crr, h, w = y.shape
    return y.new_empty(n, crr // (r * r), r * h, r * w)


def _shuffle_clamp_setup(ctx, inputs, output):
    y, ctx.r, ctx.clamp = inputs
    ctx.save_for_backward(y if ctx.clamp else None)


def _shuffle_clamp_grad(ctx, grad):
    g = F.pixel_unshuffle(grad, ctx.r)
    if ctx.clamp:  # clamp's gradient: passed where 0 <= y <= 1, as torch.clamp's
        (y,) = ctx.saved_tensors
        g = g * ((y >= 0) & (y <= 1)).to(g.dtype)
    return g, None, None


_shuffle_clamp_op.register_autograd(_shuffle_clamp_grad, setup_context=_shuffle_clamp_setup)


def shuffle_clamp(y: torch.Tensor, r: int, clamp: bool = True) -> torch.Tensor:
    """PixelShuffle(r) of y (N, C*r*r, H, W), clamped to [0, 1] when ``clamp``, as one op ->
    (N, C, rH, rW) contiguous; differentiable.  Under torch.compile it stays one opaque
    node: inductor's own loop for shuffle + clamp of a channels-last map reads the whole map
    once per output channel (RT4KSR x2 at 1280x720 on 2 threads: ~67 ms, against ~20 ms for
    this strided write)."""
    if y.dim() != 4 or isinstance(r, bool) or not isinstance(r, int) or r < 1 or y.shape[1] % (r * r):
        raise ValueError(f"y must be (N, C*r*r, H, W) for a positive int r, got {tuple(y.shape)} and r={r!r}")
    return _shuffle_clamp_op(y, r, bool(clamp))
