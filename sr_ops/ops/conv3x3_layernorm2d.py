"""conv3x3_layernorm2d: layernorm2d(GELU?(conv3x3(x))) with the norm in the convolution's
epilogue.

RT4KSR's re-parameterised body is conv -> GELU -> LayerNorm2d -> conv ..., and the GELU'd
map feeds nothing but the norm. The CPU kernel (csrc/cpu/conv3x3.cpp) normalises each
Winograd tile's four output pixels while their Cout values are still in L1, so the
convolution's output map is never written nor read back: one pass over the map per block
instead of two. Elsewhere it is conv3x3, then sr_ops.layernorm2d / gelu_layernorm2d. The
backward recomputes the convolution (the forward never stores it), runs layernorm2d's
backward kernels there, GELU's derivative, then the convolution's backward."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sr_ops import reference
from sr_ops.backends import BackendTable, Kernel
from sr_ops.ops.conv3x3 import _conv3x3_op, _fixed_order, conv3x3_backward
from sr_ops.ops.gelu_layernorm2d import gelu_layernorm2d
from sr_ops.ops.layernorm2d import _layernorm2d_backward_op, layernorm2d, out_format
from sr_ops.reference.conv3x3_layernorm2d import _check as _check_reference


def _reference_fwd(x, weight, bias, norm_weight, norm_bias, eps, gelu):
    out = reference.conv3x3_layernorm2d(x, weight, bias, norm_weight, norm_bias, eps, gelu)
    return out.contiguous(memory_format=out_format(x))


def _composed_fwd(x, weight, bias, norm_weight, norm_bias, eps, gelu):
    b, _, h, w = x.shape
    if b * h * w == 0:
        return x.new_empty((b, weight.shape[0], h, w)).contiguous(memory_format=out_format(x))
    # half maps: the convolution in float32, rounded once after the norm (its mean would lose
    # ~1e-3 in float16, which the norm divides by the spread). conv3x3 keeps x's layout, the
    # norms keep the conv's.
    dtype = torch.promote_types(x.dtype, torch.float32)
    z = _conv3x3_op(x.to(dtype), weight.to(dtype), bias.to(dtype))
    out = (gelu_layernorm2d if gelu else layernorm2d)(z, norm_weight.to(dtype), norm_bias.to(dtype), eps)
    return out.to(x.dtype)


def _cpp_fwd(x, weight, bias, norm_weight, norm_bias, eps, gelu):
    out = torch.ops.sr_ops._conv3x3_layernorm2d_fwd(x, weight, bias, norm_weight, norm_bias, eps, gelu)
    return out.contiguous(memory_format=out_format(x))


_forward = BackendTable(
    "conv3x3_layernorm2d",
    reference=_reference_fwd,
    cpu=Kernel(_cpp_fwd, dtypes=(torch.float32,)),
    cuda=_composed_fwd,
    triton=_composed_fwd,
)


def _check(x, weight, bias, norm_weight, norm_bias, eps, gelu):
    _check_reference(x, weight, bias, norm_weight, norm_bias, eps, gelu)
    dtypes = {t.dtype for t in (x, weight, bias, norm_weight, norm_bias)}
    if len(dtypes) != 1:
        raise TypeError("x, weight, bias, norm_weight and norm_bias must share a dtype, "
                        f"got {sorted(map(str, dtypes))}")


@torch.library.custom_op("sr_ops::conv3x3_layernorm2d", mutates_args=())
def _op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, norm_weight: torch.Tensor,
        norm_bias: torch.Tensor, eps: float, gelu: bool) -> torch.Tensor:
    _check(x, weight, bias, norm_weight, norm_bias, eps, gelu)
    return _forward(x.device, x, weight, bias, norm_weight, norm_bias, eps, gelu)


@_op.register_fake
def _(x, weight, bias, norm_weight, norm_bias, eps, gelu):
    _check(x, weight, bias, norm_weight, norm_bias, eps, gelu)
    b, _, h, w = x.shape
    return x.new_empty((b, weight.shape[0], h, w)).contiguous(memory_format=out_format(x))


def _setup_ctx(ctx, inputs, output):
    *tensors, ctx.eps, ctx.gelu = inputs
    ctx.save_for_backward(*tensors)


def _grad(ctx, grad):
    x, weight, bias, norm_weight, norm_bias = ctx.saved_tensors
    if grad.numel() == 0:  # an empty map: nothing flows, the norm's and the bias's sums are 0
        zeros = [torch.zeros_like(t) for t in (x, weight, bias, norm_weight, norm_bias)]
        return (*zeros, None, None)
    z = _conv3x3_op(x, weight, bias)  # recomputed: the forward never writes it
    # ATen's GELU differs in the last bit with the thread count (a scalar path on each thread's
    # tail); the CPU's float32 first-order backward takes ours, fixed at any count
    ours = ctx.gelu and _fixed_order(grad, x)
    h = (torch.ops.sr_ops._conv3x3_gelu(z) if ours else F.gelu(z)) if ctx.gelu else z
    gh, gnw, gnb = _layernorm2d_backward_op(grad, h, norm_weight, norm_bias, ctx.eps)
    if ctx.gelu:
        gz = torch.ops.sr_ops._conv3x3_gelu(z, gh) if ours else torch.ops.aten.gelu_backward(gh, z)
    else:
        gz = gh
    gx, gw, gb = conv3x3_backward(gz, x, weight, ctx.needs_input_grad[:3])
    return gx, gw, gb, gnw, gnb, None, None


_op.register_autograd(_grad, setup_context=_setup_ctx)


def conv3x3_layernorm2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, norm_weight: torch.Tensor,
                        norm_bias: torch.Tensor, eps: float = 1e-6, gelu: bool = False) -> torch.Tensor:
    """LayerNorm2d of a 3x3 convolution's output (after the exact GELU when ``gelu``), without
    writing the convolution's map.

    Args:
        x: (B, Cin, H, W) float tensor; any sizes (odd too, 0 gives an empty map).
        weight: (Cout, Cin, 3, 3), Cout >= 1; bias: (Cout,). The convolution: stride 1, zero
            padding 1, as ``sr_ops.conv3x3``.
        norm_weight, norm_bias: (Cout,) scale and shift of the norm; eps: non-negative number
            added to the variance.
        gelu: apply ``F.gelu`` (erf form) between the convolution and the norm.

    Returns:
        (B, Cout, H, W) in x's dtype (computed in the promoted dtype of the five, float16 and
        bfloat16 in float32, rounded once); empty when B, H or W is 0: ``layernorm2d(gelu(conv3x3(x, weight,
        bias)) if gelu else conv3x3(...), norm_weight, norm_bias, eps)``, within float32
        rounding (the CPU's float32 kernel: Winograd as conv3x3, GELU by gelu_layernorm2d's
        vector erf). Channels-last for a channels-last x, else contiguous. Differentiable in
        all five tensors (twice).
    """
    _check_reference(x, weight, bias, norm_weight, norm_bias, eps, gelu)
    dtype = torch.promote_types(torch.promote_types(x.dtype, weight.dtype), bias.dtype)
    dtype = torch.promote_types(torch.promote_types(dtype, norm_weight.dtype), norm_bias.dtype)
    return _op(*(t.to(dtype) for t in (x, weight, bias, norm_weight, norm_bias)), float(eps), gelu).to(x.dtype)
