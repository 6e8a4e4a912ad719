"""patch2img: fold patches laid on a strided grid back into an image, averaging overlaps."""
from __future__ import annotations

import torch

from sr_ops import _validate as v
from sr_ops import reference
from sr_ops.backends import BackendTable, lazy


def _cpp_fwd(patches, out_size, patch_size, stride):
    return torch.ops.sr_ops._patch2img_fwd(patches, out_size[0], out_size[1], stride)



_forward = BackendTable(
    "patch2img",
    reference=reference.patch2img,
    cpu=_cpp_fwd,
    cuda=_cpp_fwd,
    triton=lazy("sr_ops.triton.patch2img", "patch2img_fwd"),
)
_backward = BackendTable(
    "patch2img",
    reference=reference.patch2img_backward,
    native="_patch2img_bwd",
    triton=lazy("sr_ops.triton.patch2img", "patch2img_bwd"),
)


def _check(patches, out_size, patch_size, stride):
    v.tensor(patches, "patches", dims=5, doc="(B, L, C, P, P)")
    H, W = v.int_pair(out_size, "out_size")
    v.positive_int(patch_size, "patch_size")
    v.positive_int(stride, "stride")
    B, L, C, P, P2 = patches.shape
    v.channels(patches, "patches", "patch2img", dim=2)
    if P != patch_size or P2 != patch_size:
        raise ValueError(f"patches must be (B, L, C, {patch_size}, {patch_size}) for patch_size={patch_size}, "
                         f"got shape {tuple(patches.shape)}")
    v.patch_fits(patch_size, (H, W), "out_size")
    m1, m2 = v.grid(H, patch_size, stride), v.grid(W, patch_size, stride)
    if L != m1 * m2:
        raise ValueError(f"patches must hold the {m1}x{m2} = {m1 * m2} patches of the grid, got L={L}")
    return H, W


def _check_backward(grad_out, patch_size, stride):
    v.tensor(grad_out, "grad_out", dims=4, doc="(B, C, H, W)")
    v.positive_int(patch_size, "patch_size")
    v.positive_int(stride, "stride")
    v.patch_fits(patch_size, grad_out.shape[-2:], "grad_out")


@torch.library.custom_op("sr_ops::patch2img", mutates_args=())
def _patch2img_op(patches: torch.Tensor, out_size: list[int], patch_size: int, stride: int) -> torch.Tensor:
    _check(patches, out_size, patch_size, stride)
    return _forward(patches.device, patches, out_size, patch_size, stride)


@_patch2img_op.register_fake
def _(patches, out_size, patch_size, stride):
    H, W = _check(patches, out_size, patch_size, stride)
    return patches.new_empty(patches.shape[0], patches.shape[2], H, W)


@torch.library.custom_op("sr_ops::patch2img_backward", mutates_args=())
def _patch2img_backward_op(grad_out: torch.Tensor, patch_size: int, stride: int) -> torch.Tensor:
    _check_backward(grad_out, patch_size, stride)
    return _backward(grad_out.device, grad_out.contiguous(), patch_size, stride)


@_patch2img_backward_op.register_fake
def _(grad_out, patch_size, stride):
    _check_backward(grad_out, patch_size, stride)
    B, C, H, W = grad_out.shape
    L = v.grid(H, patch_size, stride) * v.grid(W, patch_size, stride)
    return grad_out.new_empty(B, L, C, patch_size, patch_size)


def _setup_ctx(ctx, inputs, output):
    _, _, ctx.patch_size, ctx.stride = inputs
    ctx.out_size = inputs[1]


def _grad(ctx, grad):
    return _patch2img_backward_op(grad, ctx.patch_size, ctx.stride), None, None, None


def _setup_ctx_bwd(ctx, inputs, output):
    grad_out, ctx.patch_size, ctx.stride = inputs
    ctx.out_size = list(grad_out.shape[-2:])


def _grad_bwd(ctx, grad):
    # patch2img is linear, so the backward of its backward is patch2img itself.
    return _patch2img_op(grad.contiguous(), ctx.out_size, ctx.patch_size, ctx.stride), None, None


_patch2img_op.register_autograd(_grad, setup_context=_setup_ctx)
_patch2img_backward_op.register_autograd(_grad_bwd, setup_context=_setup_ctx_bwd)


def patch2img(patches: torch.Tensor, out_size, patch_size: int, stride: int) -> torch.Tensor:
    """Fold patches laid on a strided grid back into an image, averaging overlaps.

    Args:
        patches: (B, L, C, P, P) float tensor; patch ``l = i*m2 + j`` (row-major) has its
            top-left pixel at ``(stride*i, stride*j)``.
        out_size: (H, W) of the output; the grid is ``m1 = (H - P)//stride + 1`` rows by
            ``m2 = (W - P)//stride + 1`` columns and ``L`` must equal ``m1*m2``.
        patch_size: P.
        stride: grid stride T (may be larger than P: uncovered pixels are 0).

    Returns:
        (B, C, H, W): each pixel the mean of the patches covering it, 0 where none does.
        Differentiable in ``patches`` (the backward is its own kernel on every backend).
    """
    H, W = _check(patches, out_size, patch_size, stride)
    return _patch2img_op(patches, [H, W], patch_size, stride)
