"""conv3x3: a 3x3 convolution (stride 1, zero padding 1, bias), by Winograd on the CPU.

RT4KSR spends ~3/4 of its CPU time in 3x3 convolutions of 12-48 channels, which oneDNN
runs directly at ~80% of an AVX2 machine's FMA peak (it has no Winograd path there). The
CPU kernel (csrc/cpu/conv3x3.cpp) computes F(2x2, 3x3): 2.25x fewer multiplies, the
transformed tiles kept in cache. Other devices and dtypes run ``F.conv2d`` (cuDNN picks
its own Winograd or implicit-GEMM kernels on a GPU). The backward is ATen's convolution
backward (differentiable again), except the CPU's float32 first-order gradients: ATen's
sums depend on the thread count on some shapes, so grad_x is the Winograd kernel's
convolution of grad with the flipped taps, and the weight's and bias's pixel sums come from
csrc/cpu/conv3x3_backward.cpp, in an order fixed by the shapes."""
from __future__ import annotations

import torch

from sr_ops import reference
from sr_ops.backends import BackendTable, Kernel, available_backends, requested_backend
from sr_ops.ops.layernorm2d import out_format
from sr_ops.reference.conv3x3 import _check as _check_reference


def _reference_fwd(x, weight, bias):
    return reference.conv3x3(x, weight, bias).contiguous(memory_format=out_format(x))


def _cpp_fwd(x, weight, bias):
    return torch.ops.sr_ops._conv3x3_fwd(x, weight, bias).contiguous(memory_format=out_format(x))


_forward = BackendTable(
    "conv3x3",
    reference=_reference_fwd,
    cpu=Kernel(_cpp_fwd, dtypes=(torch.float32,)),
    # On a GPU cuDNN already picks Winograd or implicit-GEMM kernels; no kernel of ours beats it.
    cuda=_reference_fwd,
    triton=_reference_fwd,
)


def _check(x, weight, bias):
    _check_reference(x, weight, bias)
    if not (x.dtype == weight.dtype == bias.dtype):
        raise TypeError(f"x, weight and bias must share a dtype, got {x.dtype}, {weight.dtype} and {bias.dtype}")


@torch.library.custom_op("sr_ops::conv3x3", mutates_args=())
def _conv3x3_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    _check(x, weight, bias)
    return _forward(x.device, x, weight, bias)


@_conv3x3_op.register_fake
def _(x, weight, bias):
    _check(x, weight, bias)
    b, _, h, w = x.shape
    return x.new_empty((b, weight.shape[0], h, w)).contiguous(memory_format=out_format(x))


def _setup_ctx(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def conv3x3_backward(grad, x, weight, mask):
    """(grad_x, grad_weight, grad_bias) of conv3x3 at (x, weight), each None where mask says
    it is not needed: ATen's convolution backward (differentiable again)."""
    if x.shape[1] == 0 or grad.numel() == 0:
        # ATen's convolution backward mishandles Cin = 0 as its forward does, and raises on
        # empty maps: nothing flows, and the bias takes the (possibly empty) sum.
        return torch.zeros_like(x), torch.zeros_like(weight), grad.sum((0, 2, 3))
    if _fixed_order(grad, x):
        # ATen's sums depend on the thread count on some shapes (its grad_x of a channels-last
        # 3-channel map, its weight gradient's split over the pixels); ours do not. grad_x is
        # the 3x3 convolution of grad with the flipped, transposed taps: the Winograd forward,
        # which sums each pixel alone. The weight's and bias's pixel sums: a fixed-order kernel.
        gx = gw = gb = None
        if mask[0]:
            taps = weight.detach().transpose(0, 1).flip((2, 3))
            gx = torch.ops.sr_ops._conv3x3_fwd(grad, taps, grad.new_zeros(x.shape[1]))
        if mask[1] or mask[2]:
            gw, gb = torch.ops.sr_ops._conv3x3_bwd_weight(grad, x)
        return gx, gw if mask[1] else None, gb if mask[2] else None
    return torch.ops.aten.convolution_backward(
        grad, x, weight, [weight.shape[0]], [1, 1], [1, 1], [1, 1], False, [0, 0], 1, list(mask))


def _fixed_order(grad, x):
    """Whether the gradients go through our fixed-order CPU kernels: float32 CPU maps, first
    order only (a double backward needs ATen's differentiable formula), not while
    torch.compile traces (fake tensors), not under use_backend("reference")."""
    return (type(x) is torch.Tensor and type(grad) is torch.Tensor and x.device.type == "cpu"
            and x.dtype == grad.dtype == torch.float32 and not torch.is_grad_enabled()
            and requested_backend() in (None, "cpu") and "cpu" in available_backends())


def _grad(ctx, grad):
    x, weight, _ = ctx.saved_tensors
    return conv3x3_backward(grad, x, weight, ctx.needs_input_grad)


_conv3x3_op.register_autograd(_grad, setup_context=_setup_ctx)


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=1)`` for a 3x3 kernel, fastest on the CPU for
    channels-last float32 maps.

    Args:
        x: (B, Cin, H, W) float tensor; any sizes (odd too, 0 gives an empty map).
        weight: (Cout, Cin, 3, 3).
        bias: (Cout,).

    Returns:
        (B, Cout, H, W) in x's dtype (computed in the promoted dtype of the three);
        channels-last for a channels-last x, else contiguous; empty when B, H, W or Cout is 0.
        The padded zeros count as inputs: a non-finite weight tap that meets them makes the
        pixel NaN (0 * inf), as the float64 direct sum. On the CPU in float32, Winograd F(2x2, 3x3): within float32
        rounding of the direct convolution (the transforms add a few ulp per 2x2 tile, about
        oneDNN's own error against float64), and non-finite where it is non-finite (an inf
        may come out NaN). float64, float16, bfloat16 and the cuda and triton backends run ``F.conv2d``.
        Differentiable in all three (ATen's convolution backward, twice; on the CPU in
        float32 the first-order gradients are ours, the same bits at any thread count).
    """
    _check_reference(x, weight, bias)
    dtype = torch.promote_types(torch.promote_types(x.dtype, weight.dtype), bias.dtype)
    return _conv3x3_op(x.to(dtype), weight.to(dtype), bias.to(dtype)).to(x.dtype)
