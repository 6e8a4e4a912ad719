"""layernorm2d: NAFNet's LayerNorm2d, each pixel normalised over its channels."""
from __future__ import annotations

import torch

from sr_ops import _validate as v
from sr_ops import reference
from sr_ops.backends import BackendTable, Kernel, lazy
from sr_ops.ops._autograd import register_closed_form_autograd
from sr_ops.reference.layernorm2d import _check as _check_reference


def out_format(x: torch.Tensor) -> torch.memory_format:
    """The output's memory format on every backend (the fake kernel's promise): channels-last
    for a channels-last x (the CPU kernel reads it in place: oneDNN's convolutions around it
    run fastest that way), else contiguous."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _reference_fwd(x, weight, bias, eps):
    return reference.layernorm2d(x.contiguous(), weight, bias, eps).contiguous(memory_format=out_format(x))


def _reference_bwd(grad_out, x, weight, bias, eps):
    """The closed-form gradient (csrc/kernels/layernorm2d.h derives it) in plain torch ops:
    autograd cannot record inside a custom op's kernel, which runs below the autograd key."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    xf, g, w = x.to(dtype), grad_out.to(dtype), weight.to(dtype)[:, None, None]
    mu = xf.mean(1, keepdim=True)
    var = (xf - mu).pow(2).mean(1, keepdim=True)
    rstd = torch.rsqrt(var + eps)
    xhat = (xf - mu) * rstd
    gw = g * w
    gx = rstd * (gw - gw.mean(1, keepdim=True) - xhat * (gw * xhat).mean(1, keepdim=True))
    gweight = (g * xhat).sum((0, 2, 3))
    gbias = g.sum((0, 2, 3))
    return (gx.to(x.dtype).contiguous(), gweight.to(weight.dtype).contiguous(),
            gbias.to(bias.dtype).contiguous())


def _cpp_fwd(x, weight, bias, eps):
    # The CUDA kernel writes contiguous maps; the CPU one already follows out_format.
    return torch.ops.sr_ops._layernorm2d_fwd(x, weight, bias, eps).contiguous(memory_format=out_format(x))


def _triton_fwd(x, weight, bias, eps):
    from sr_ops.triton.layernorm2d import layernorm2d_fwd

    return layernorm2d_fwd(x, weight, bias, eps).contiguous(memory_format=out_format(x))



TRITON_MAX_C = 4096  # one program holds a [next_pow2(C), BP] tile of at most 4096 values


def triton_channel_limit(*args):
    """The Triton kernels' bound on C, for x the first 4-D tensor argument."""
    x = next(a for a in args if isinstance(a, torch.Tensor) and a.dim() == 4)
    return f"C={x.shape[1]} > {TRITON_MAX_C} (a pixel's channels are one tile)" if x.shape[1] > TRITON_MAX_C else None


_forward = BackendTable(
    "layernorm2d",
    reference=_reference_fwd,
    cpu=_cpp_fwd,
    cuda=_cpp_fwd,
    triton=Kernel(_triton_fwd, limits=triton_channel_limit),
)
_backward = BackendTable(
    "layernorm2d",
    reference=_reference_bwd,
    native="_layernorm2d_bwd",
    triton=Kernel(lazy("sr_ops.triton.layernorm2d", "layernorm2d_bwd"), limits=triton_channel_limit),
)


def _check(x, weight, bias, eps):
    """The reference's checks, plus one dtype: the public function promotes before the op."""
    _check_reference(x, weight, bias, eps)
    v.same_dtype(x=x, weight=weight, bias=bias)



def _check_grad(grad_out, x):
    """The backward's incoming gradient: x's dtype, device and shape (what the kernels read)."""
    v.tensor(grad_out, "grad_out", kind=None)
    v.same_device(grad_out, "grad_out", x, "x")
    v.same_dtype(x=x, grad_out=grad_out)
    v.shape_like(grad_out, "grad_out", x.shape, "x")

@torch.library.custom_op("sr_ops::layernorm2d", mutates_args=())
def _layernorm2d_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    _check(x, weight, bias, eps)
    return _forward(x.device, x, weight, bias, eps)


@_layernorm2d_op.register_fake
def _(x, weight, bias, eps):
    _check(x, weight, bias, eps)
    return torch.empty_like(x, memory_format=out_format(x))


@torch.library.custom_op("sr_ops::layernorm2d_backward", mutates_args=())
def _layernorm2d_backward_op(grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                             eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    _check(x, weight, bias, eps)
    _check_grad(grad_out, x)
    return _backward(x.device, grad_out, x, weight, bias, eps)


@_layernorm2d_backward_op.register_fake
def _(grad_out, x, weight, bias, eps):
    _check_grad(grad_out, x)
    return (torch.empty_like(x, memory_format=torch.contiguous_format),
            torch.empty_like(weight, memory_format=torch.contiguous_format),
            torch.empty_like(bias, memory_format=torch.contiguous_format))


register_closed_form_autograd(_layernorm2d_op, _layernorm2d_backward_op, _reference_bwd)


def layernorm2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """NAFNet's LayerNorm2d: normalise each pixel over its channels, then scale and shift.

    Args:
        x: (B, C, H, W) float tensor.
        weight: (C,) per-channel scale.
        bias: (C,) per-channel shift.
        eps: non-negative number added to the variance.

    Returns:
        (B, C, H, W) in x's dtype: ``(x - mu) / sqrt(var + eps) * weight[c] + bias[c]`` with
        mu and the biased variance over the C values of each pixel. Computed in float32, or
        float64 when any input is float64 (mixed dtypes are promoted first). Differentiable
        in x, weight and bias, each backend with its own backward kernel. Channels-last in,
        channels-last out (the CPU kernel reads such a map in place), else contiguous.
    """
    _check_reference(x, weight, bias, eps)
    dtype = torch.promote_types(torch.promote_types(x.dtype, weight.dtype), bias.dtype)
    out = _layernorm2d_op(x.to(dtype), weight.to(dtype), bias.to(dtype), float(eps))
    return out.to(x.dtype)
