"""gelu_layernorm2d: layernorm2d(GELU(x)) in one pass over the map.

RT4KSR's body runs conv -> GELU -> (next block) LayerNorm2d, and the GELU output feeds
nothing else; fusing the two saves one full read and write of the feature map per block
(and, on the CPU, evaluates erf in vector registers). The kernels are layernorm2d's,
with GELU applied to each value as it is loaded; the backward recomputes GELU(x) and runs
layernorm2d's backward kernels at it, then GELU's derivative (aten.gelu_backward)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sr_ops import reference
from sr_ops.backends import BackendTable, Kernel
from sr_ops.ops.layernorm2d import _check as _check_layernorm2d
from sr_ops.ops.layernorm2d import _layernorm2d_backward_op, out_format, triton_channel_limit
from sr_ops.reference.gelu_layernorm2d import _check as _check_reference


def _reference_fwd(x, weight, bias, eps, approximate):
    out = reference.gelu_layernorm2d(x.contiguous(), weight, bias, eps, approximate)
    return out.contiguous(memory_format=out_format(x))


def _cpp_fwd(x, weight, bias, eps, approximate):
    out = torch.ops.sr_ops._gelu_layernorm2d_fwd(x, weight, bias, eps, approximate)
    return out.contiguous(memory_format=out_format(x))


def _triton_fwd(x, weight, bias, eps, approximate):
    from sr_ops.triton.layernorm2d import layernorm2d_fwd

    return layernorm2d_fwd(x, weight, bias, eps, gelu=approximate).contiguous(memory_format=out_format(x))


_forward = BackendTable(
    "gelu_layernorm2d",
    reference=_reference_fwd,
    cpu=_cpp_fwd,
    cuda=_cpp_fwd,
    triton=Kernel(_triton_fwd, limits=triton_channel_limit),
)


def _check(x, weight, bias, eps, approximate):
    _check_reference(x, weight, bias, eps, approximate)
    _check_layernorm2d(x, weight, bias, eps)


@torch.library.custom_op("sr_ops::gelu_layernorm2d", mutates_args=())
def _gelu_layernorm2d_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float,
                         approximate: str) -> torch.Tensor:
    _check(x, weight, bias, eps, approximate)
    return _forward(x.device, x, weight, bias, eps, approximate)


@_gelu_layernorm2d_op.register_fake
def _(x, weight, bias, eps, approximate):
    _check(x, weight, bias, eps, approximate)
    return torch.empty_like(x, memory_format=out_format(x))


def _setup_ctx(ctx, inputs, output):
    x, weight, bias, ctx.eps, ctx.approximate = inputs
    ctx.save_for_backward(x, weight, bias)


def _grad(ctx, grad):
    x, weight, bias = ctx.saved_tensors
    g = F.gelu(x, approximate=ctx.approximate)  # recomputed: the forward never stores it
    gg, gw, gb = _layernorm2d_backward_op(grad, g, weight, bias, ctx.eps)
    gx = torch.ops.aten.gelu_backward(gg, x, approximate=ctx.approximate)
    return gx, gw, gb, None, None


_gelu_layernorm2d_op.register_autograd(_grad, setup_context=_setup_ctx)


def gelu_layernorm2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-6,
                     approximate: str = "none") -> torch.Tensor:
    """LayerNorm2d of GELU(x), without materialising GELU(x).

    Args:
        x: (B, C, H, W) float tensor.
        weight: (C,) per-channel scale of the norm.
        bias: (C,) per-channel shift of the norm.
        eps: non-negative number added to the variance.
        approximate: ``"none"`` (exact, erf) or ``"tanh"``, as ``torch.nn.functional.gelu``.

    Returns:
        (B, C, H, W) in x's dtype, equal to
        ``layernorm2d(F.gelu(x, approximate=approximate), weight, bias, eps)`` within float
        rounding (the CPU's float32 kernel evaluates erf by a rational approximation good to a
        few ulp). Computed in float32, or float64 when any input is float64. Differentiable in
        x, weight and bias (twice: the backward is built from differentiable ops).
        Channels-last in, channels-last out, as layernorm2d.
    """
    _check_reference(x, weight, bias, eps, approximate)
    dtype = torch.promote_types(torch.promote_types(x.dtype, weight.dtype), bias.dtype)
    out = _gelu_layernorm2d_op(x.to(dtype), weight.to(dtype), bias.to(dtype), float(eps), approximate)
    return out.to(x.dtype)
