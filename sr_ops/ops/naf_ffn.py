"""naf_ffn: NAFNet's FFN half (norm2 -> conv4 -> SimpleGate -> conv5 -> * gamma + y) in one op."""
from __future__ import annotations

import torch

from sr_ops import _validate as v
from sr_ops.backends import BackendTable, lazy, native
from sr_ops.ops._autograd import register_closed_form_autograd
from sr_ops.ops.layernorm2d import out_format
from sr_ops.reference.naf_ffn import check as _check_reference
from sr_ops.reference.naf_ffn import naf_ffn as _reference_op
from sr_ops.reference.naf_ffn import naf_ffn_backward as _reference_backward


def _as_4d(w_in, w_out, gamma):
    C = w_out.shape[0]
    return w_in[:, :, None, None], w_out[:, :, None, None], gamma.reshape(C)


def _reference_fwd(y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps):
    w_in, w_out, gamma = _as_4d(w_in, w_out, gamma)
    return _reference_op(y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps)  # _op sets the layout


def _reference_bwd(grad, y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps):
    """The closed form (sr_ops/reference/naf_ffn.py): plain torch ops, so it runs under
    dispatch modes (FlopCounterMode) and opcheck, and sums over the pixels in a fixed order."""
    return _reference_backward(grad, y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma.reshape(-1), eps)


# No CUDA kernel yet: CUDA tensors take the Triton forward and backward (tensor cores, 3xTF32
# for float32: sr_ops/triton/naf_ffn.py, naf_ffn_bwd.py).
_forward = BackendTable("naf_ffn", reference=_reference_fwd, cpu=native("_naf_ffn_fwd"),
                        triton=lazy("sr_ops.triton.naf_ffn", "naf_ffn_fwd"))
_backward = BackendTable("naf_ffn", reference=_reference_bwd, cpu=native("_naf_ffn_bwd"),
                         triton=lazy("sr_ops.triton.naf_ffn_bwd", "naf_ffn_bwd"))


def _check(y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps):
    """The op's arguments: w_in (2F, C), w_out (C, F), gamma (C,), all of y's dtype."""
    for t, name, dims in [(w_in, "w_in", 2), (w_out, "w_out", 2), (gamma, "gamma", 1)]:
        v.tensor(t, name, dims=dims, doc="(sr_ops::naf_ffn takes w_in (2F, C), w_out (C, F), gamma (C,))")
    _check_reference(y, norm_weight, norm_bias, w_in[:, :, None, None], b_in, w_out[:, :, None, None], b_out,
                     gamma, eps)
    v.same_dtype(y=y, norm_weight=norm_weight, norm_bias=norm_bias, w_in=w_in, b_in=b_in, w_out=w_out,
                 b_out=b_out, gamma=gamma)


@torch.library.custom_op("sr_ops::naf_ffn", mutates_args=())
def _op(y: torch.Tensor, norm_weight: torch.Tensor, norm_bias: torch.Tensor, w_in: torch.Tensor,
        b_in: torch.Tensor, w_out: torch.Tensor, b_out: torch.Tensor, gamma: torch.Tensor, eps: float) -> torch.Tensor:
    _check(y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps)
    out = _forward(y.device, y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps)
    # The layout the fake kernel promises: the CPU kernel writes it; the others write contiguous maps.
    return out.contiguous(memory_format=out_format(y))


@_op.register_fake
def _(y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps):
    _check(y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps)
    return torch.empty_like(y, memory_format=out_format(y))


@torch.library.custom_op("sr_ops::naf_ffn_backward", mutates_args=())
def _backward_op(grad: torch.Tensor, y: torch.Tensor, norm_weight: torch.Tensor, norm_bias: torch.Tensor,
                 w_in: torch.Tensor, b_in: torch.Tensor, w_out: torch.Tensor, b_out: torch.Tensor,
                 gamma: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                            torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    _check(y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps)
    v.shape_like(grad, "grad", y.shape, "y")
    return _backward(y.device, grad, y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps)


@_backward_op.register_fake
def _(grad, y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps):
    return tuple(torch.empty_like(t, memory_format=torch.contiguous_format)
                 for t in (y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma))


register_closed_form_autograd(_op, _backward_op, _reference_bwd)


def naf_ffn(y: torch.Tensor, norm_weight: torch.Tensor, norm_bias: torch.Tensor, w_in: torch.Tensor,
            b_in: torch.Tensor, w_out: torch.Tensor, b_out: torch.Tensor, gamma: torch.Tensor,
            eps: float = 1e-6) -> torch.Tensor:
    """The second half of a NAFNet block in one op:
    ``y + gamma * conv_out(gate(conv_in(layernorm2d(y))))``, gate(h) = h[:, :F] * h[:, F:].

    Args:
        y: (B, C, H, W) float tensor (the block's ``y = inp + beta * ...``).
        norm_weight, norm_bias: (C,) LayerNorm2d affine (``norm2``).
        w_in: (2F, C, 1, 1) or (2F, C), b_in: (2F,) — the 1x1 conv before SimpleGate (``conv4``).
        w_out: (C, F, 1, 1) or (C, F), b_out: (C,) — the 1x1 conv after it (``conv5``).
        gamma: (C,) or (1, C, 1, 1).
        eps: LayerNorm2d's epsilon.

    Returns:
        (B, C, H, W) in y's dtype, channels-last for a channels-last y (which the CPU kernel
        reads in place, in pixel-major tiles), else contiguous; all inputs are promoted to one dtype first, float16 and
        bfloat16 are computed in float32 on the CPU. The CPU kernels work on tiles of 256
        pixels and never write the (B, 2F, H, W) and (B, F, H, W) intermediate maps; the
        backward recomputes each tile's. Differentiable in all eight tensors.
    """
    C = y.shape[1] if isinstance(y, torch.Tensor) and y.dim() == 4 else None
    w4 = w_in[:, :, None, None] if isinstance(w_in, torch.Tensor) and w_in.dim() == 2 else w_in
    wo4 = w_out[:, :, None, None] if isinstance(w_out, torch.Tensor) and w_out.dim() == 2 else w_out
    _check_reference(y, norm_weight, norm_bias, w4, b_in, wo4, b_out, gamma, eps)
    tensors = (y, norm_weight, norm_bias, w4.flatten(1), b_in, wo4.flatten(1), b_out, gamma.reshape(C))
    dtype = y.dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    half = dtype in (torch.float16, torch.bfloat16) and y.device.type == "cpu"
    work = torch.float32 if half else dtype
    out = _op(*(t.to(work) for t in tensors), float(eps))
    return out.to(y.dtype)
