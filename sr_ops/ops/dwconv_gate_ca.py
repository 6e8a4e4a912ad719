"""dwconv_gate_ca: depthwise conv -> SimpleGate -> simplified channel attention, fused."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sr_ops import _validate as v
from sr_ops.backends import BackendTable, lazy
from sr_ops.ops._autograd import register_closed_form_autograd
from sr_ops.ops.layernorm2d import out_format
from sr_ops.reference.dwconv_gate_ca import check as _check_reference
from sr_ops.reference.dwconv_gate_ca import dwconv_gate_ca as _reference_op


def _reference_fwd(x, dw_weight, dw_bias, ca_weight, ca_bias, gate):
    return _reference_op(x, dw_weight, dw_bias, ca_weight, ca_bias, gate)


def _reference_bwd(grad_out, x, dw_weight, dw_bias, ca_weight, ca_bias, gate):
    """The closed-form gradient of csrc/kernels/dwconv_gate_ca.h in plain torch ops
    (autograd does not record inside a custom op's kernel)."""
    if x.numel() == 0:  # no pixel: zero gradients (the pooled mean would be 0/0)
        return tuple(torch.zeros_like(t, memory_format=torch.contiguous_format)
                     for t in (x, dw_weight, dw_bias, ca_weight, ca_bias))
    k = dw_weight.shape[-1]
    C, HW = x.shape[1], x.shape[2] * x.shape[3]
    dtype = torch.promote_types(x.dtype, torch.float32)  # half types: float32 math, rounded at the end
    like = (x, dw_weight, dw_bias, ca_weight, ca_bias)
    g, x, dw_weight, dw_bias, ca_weight, ca_bias = (t.to(dtype) for t in (grad_out, *like))
    u = F.conv2d(x, dw_weight, dw_bias, padding=k // 2, groups=C)
    u1, u2 = u.chunk(2, dim=1) if gate else (u, None)
    y = u1 * u2 if gate else u1
    cw = ca_weight.flatten(1)  # (C', C')
    s = y.mean((2, 3))  # (B, C')
    a = s @ cw.t() + ca_bias
    ga = (g * y).sum((2, 3))  # (B, C')
    gy = g * a[:, :, None, None] + (ga @ cw)[:, :, None, None] / HW
    gu = torch.cat([gy * u2, gy * u1], 1) if gate else gy
    dx = F.conv_transpose2d(gu, dw_weight, padding=k // 2, groups=C)
    ddw = torch.nn.grad.conv2d_weight(x, dw_weight.shape, gu, padding=k // 2, groups=C)
    grads = (dx, ddw, gu.sum((0, 2, 3)), (ga.t() @ s).reshape(ca_weight.shape), ga.sum(0))
    return tuple(gr.to(t.dtype).contiguous() for gr, t in zip(grads, like))




_forward = BackendTable(
    "dwconv_gate_ca",
    reference=_reference_fwd,
    native="_dwconv_gate_ca_fwd",
    triton=lazy("sr_ops.triton.dwconv_gate_ca", "dwconv_gate_ca_fwd"),
)
_backward = BackendTable(
    "dwconv_gate_ca",
    reference=_reference_bwd,
    native="_dwconv_gate_ca_bwd",
    triton=lazy("sr_ops.triton.dwconv_gate_ca", "dwconv_gate_ca_bwd"),
)


def _check(x, dw_weight, dw_bias, ca_weight, ca_bias, gate):
    """The reference's checks, plus one dtype: the public function promotes before the op."""
    _check_reference(x, dw_weight, dw_bias, ca_weight, ca_bias, gate)
    v.same_dtype(x=x, dw_weight=dw_weight, dw_bias=dw_bias, ca_weight=ca_weight, ca_bias=ca_bias)


def _check_backward(grad_out, x, dw_weight, dw_bias, ca_weight, ca_bias, gate):
    _check(x, dw_weight, dw_bias, ca_weight, ca_bias, gate)
    v.tensor(grad_out, "grad_out", kind=None)
    v.same_device(grad_out, "grad_out", x, "x")
    v.same_dtype(x=x, grad_out=grad_out)
    v.shape_like(grad_out, "grad_out", _out_shape(x, gate), "the output")


def _out_shape(x, gate):
    B, C, H, W = x.shape
    return (B, C // 2 if gate else C, H, W)


@torch.library.custom_op("sr_ops::dwconv_gate_ca", mutates_args=())
def _op(x: torch.Tensor, dw_weight: torch.Tensor, dw_bias: torch.Tensor, ca_weight: torch.Tensor,
        ca_bias: torch.Tensor, gate: bool) -> torch.Tensor:
    _check(x, dw_weight, dw_bias, ca_weight, ca_bias, gate)
    if x.numel() == 0:  # B, H or W = 0: nothing for a kernel to do (the fake kernel's shape)
        return x.new_empty(_out_shape(x, gate)).contiguous(memory_format=out_format(x))
    out = _forward(x.device, x, dw_weight, dw_bias, ca_weight, ca_bias, gate)
    # The layout the fake kernel promises: the CPU kernel writes it; the others write contiguous maps.
    return out.contiguous(memory_format=out_format(x))


@_op.register_fake
def _(x, dw_weight, dw_bias, ca_weight, ca_bias, gate):
    _check(x, dw_weight, dw_bias, ca_weight, ca_bias, gate)
    return x.new_empty(_out_shape(x, gate)).contiguous(memory_format=out_format(x))


@torch.library.custom_op("sr_ops::dwconv_gate_ca_backward", mutates_args=())
def _backward_op(grad_out: torch.Tensor, x: torch.Tensor, dw_weight: torch.Tensor, dw_bias: torch.Tensor,
                 ca_weight: torch.Tensor, ca_bias: torch.Tensor,
                 gate: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    _check_backward(grad_out, x, dw_weight, dw_bias, ca_weight, ca_bias, gate)
    if x.numel() == 0:
        return _reference_bwd(grad_out, x, dw_weight, dw_bias, ca_weight, ca_bias, gate)
    return _backward(x.device, grad_out, x, dw_weight, dw_bias, ca_weight, ca_bias, gate)


@_backward_op.register_fake
def _(grad_out, x, dw_weight, dw_bias, ca_weight, ca_bias, gate):
    _check_backward(grad_out, x, dw_weight, dw_bias, ca_weight, ca_bias, gate)
    return tuple(torch.empty_like(t, memory_format=torch.contiguous_format)
                 for t in (x, dw_weight, dw_bias, ca_weight, ca_bias))


register_closed_form_autograd(_op, _backward_op, _reference_bwd)


def dwconv_gate_ca(x: torch.Tensor, dw_weight: torch.Tensor, dw_bias: torch.Tensor, ca_weight: torch.Tensor,
                   ca_bias: torch.Tensor, gate: bool = True) -> torch.Tensor:
    """NAFNet's middle in one op: depthwise conv, SimpleGate, simplified channel attention.

    Args:
        x: (B, C, H, W) float tensor.
        dw_weight: (C, 1, k, k) depthwise kernel, k odd (zero padding k//2); dw_bias: (C,).
        ca_weight: (C', C', 1, 1) 1x1 conv of the pooled map, ca_bias: (C',); C' = C/2 when
            ``gate`` (C must then be even), else C.
        gate: apply SimpleGate (first half of the channels times the second half).

    Returns:
        (B, C', H, W) in x's dtype: ``y * (ca_weight @ mean_hw(y) + ca_bias)`` with y the
        (gated) depthwise conv; channels-last for a channels-last x (the CPU kernel reads such
        an x in place, a row of all channels at a time), else contiguous. All inputs are
        promoted to one dtype first. Differentiable in
        x and all four weights, each backend with its own backward kernels.
    """
    _check_reference(x, dw_weight, dw_bias, ca_weight, ca_bias, gate)
    dtype = x.dtype
    for t in (dw_weight, dw_bias, ca_weight, ca_bias):
        dtype = torch.promote_types(dtype, t.dtype)
    out = _op(x.to(dtype), dw_weight.to(dtype), dw_bias.to(dtype), ca_weight.to(dtype), ca_bias.to(dtype), gate)
    return out.to(x.dtype)
