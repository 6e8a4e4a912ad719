"""eca: efficient channel attention (ECA-Net, RT4KSR), pool -> 1-D conv over channels ->
sigmoid -> multiply, in one op."""
from __future__ import annotations

import torch

from sr_ops import _validate as v
from sr_ops import reference
from sr_ops.backends import BackendTable, lazy
from sr_ops.ops._autograd import register_closed_form_autograd
from sr_ops.reference.eca import _check as _check_reference


# Contiguous copies in, so the outputs have the contiguous strides the fake kernels promise.
def _reference_fwd(x, weight):
    return reference.eca(x.contiguous(), weight).contiguous()


def _reference_bwd(grad_out, x, weight):
    """The closed-form gradient (csrc/kernels/eca.h derives it) in plain torch ops:
    autograd cannot record inside a custom op's kernel, which runs below the autograd key."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    xf, g, w = x.to(dtype), grad_out.to(dtype), weight.to(dtype)
    k, HW = w.shape[0], x.shape[2] * x.shape[3]
    s = xf.mean((2, 3))  # (B, C)
    a = torch.nn.functional.conv1d(s.unsqueeze(1), w.reshape(1, 1, k), padding=k // 2).squeeze(1)
    gate = torch.sigmoid(a)
    da = (g * xf).sum((2, 3)) * gate * (1 - gate)  # (B, C)
    ds = torch.nn.functional.conv_transpose1d(da.unsqueeze(1), w.reshape(1, 1, k), padding=k // 2).squeeze(1)
    gx = g * gate[:, :, None, None] + (ds / HW)[:, :, None, None]
    s_pad = torch.nn.functional.pad(s, (k // 2, k // 2))  # (B, C + k - 1)
    gw = (s_pad.unfold(1, k, 1) * da.unsqueeze(-1)).sum((0, 1))  # window c holds s_{c + j - r}
    return gx.to(x.dtype).contiguous(), gw.to(weight.dtype).contiguous()




_forward = BackendTable(
    "eca",
    reference=_reference_fwd,
    native="_eca_fwd",
    triton=lazy("sr_ops.triton.eca", "eca_fwd"),
)
_backward = BackendTable(
    "eca",
    reference=_reference_bwd,
    native="_eca_bwd",
    triton=lazy("sr_ops.triton.eca", "eca_bwd"),
)


def _check(x, weight):
    """The reference's checks, for the (k,) weight the op takes, plus one dtype."""
    _check_reference(x, weight)
    if weight.dim() != 1:
        raise ValueError(f"the op takes conv1d_weight flattened to (k,), got {tuple(weight.shape)}")
    v.same_dtype(x=x, conv1d_weight=weight)



def _check_grad(grad_out, x):
    """The backward's incoming gradient: x's dtype, device and shape (what the kernels read)."""
    v.tensor(grad_out, "grad_out", kind=None)
    v.same_device(grad_out, "grad_out", x, "x")
    v.same_dtype(x=x, grad_out=grad_out)
    v.shape_like(grad_out, "grad_out", x.shape, "x")

@torch.library.custom_op("sr_ops::eca", mutates_args=())
def _eca_op(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    _check(x, weight)
    return _forward(x.device, x, weight)


@_eca_op.register_fake
def _(x, weight):
    _check(x, weight)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("sr_ops::eca_backward", mutates_args=())
def _eca_backward_op(grad_out: torch.Tensor, x: torch.Tensor,
                     weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    _check(x, weight)
    _check_grad(grad_out, x)
    return _backward(x.device, grad_out, x, weight)


@_eca_backward_op.register_fake
def _(grad_out, x, weight):
    _check_grad(grad_out, x)
    return (torch.empty_like(x, memory_format=torch.contiguous_format),
            torch.empty_like(weight, memory_format=torch.contiguous_format))


register_closed_form_autograd(_eca_op, _eca_backward_op, _reference_bwd)


def eca(x: torch.Tensor, conv1d_weight: torch.Tensor) -> torch.Tensor:
    """Efficient channel attention: gate each channel by a 1-D conv over the pooled channels.

    Args:
        x: (B, C, H, W) float tensor, H * W >= 1.
        conv1d_weight: (1, 1, k) (an ``nn.Conv1d(1, 1, k, bias=False)`` weight) or (k,),
            k odd.

    Returns:
        (B, C, H, W) in x's dtype: ``x * sigmoid(conv1d(mean_HW(x), w, padding=k // 2))``,
        the convolution running along the channels, zero-padded, no bias. Computed in
        float32, or float64 when either input is float64 (mixed dtypes are promoted first).
        Differentiable in x and conv1d_weight (its gradient has conv1d_weight's shape),
        each backend with its own backward kernel.
    """
    _check_reference(x, conv1d_weight)
    dtype = torch.promote_types(x.dtype, conv1d_weight.dtype)
    out = _eca_op(x.to(dtype), conv1d_weight.to(dtype).reshape(-1))
    return out.to(x.dtype)
