"""extract_patches: every patch of a grid that covers the whole image, with its corner."""
from __future__ import annotations

import torch

from sr_ops import _validate as v
from sr_ops import reference
from sr_ops.backends import BackendTable, lazy
from sr_ops.ops.gather_patches import gather_backward
from sr_ops.reference.extract_patches import grid_count

_forward = BackendTable("extract_patches", reference=reference.extract_patches, native="_extract_patches_fwd",
                        triton=lazy("sr_ops.triton.extract_patches", "extract_patches_fwd"))


def _check(img, patch_size, stride) -> int:
    """Returns N, the number of patches."""
    v.tensor(img, "img", dims=4, doc="(B, C, H, W)")
    v.positive_int(patch_size, "patch_size")
    v.positive_int(stride, "stride")
    B, _, H, W = img.shape
    v.patch_fits(patch_size, (H, W), "img")
    return B * grid_count(H, patch_size, stride) * grid_count(W, patch_size, stride)


@torch.library.custom_op("sr_ops::extract_patches", mutates_args=())
def _extract_op(img: torch.Tensor, patch_size: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    _check(img, patch_size, stride)
    return _forward(img.device, img, patch_size, stride)


@_extract_op.register_fake
def _(img, patch_size, stride):
    N = _check(img, patch_size, stride)
    return (img.new_empty(N, img.shape[1], patch_size, patch_size),
            img.new_empty(N, 3, dtype=torch.int64))


def _setup_ctx(ctx, inputs, output):
    img = inputs[0]
    ctx.img_size = list(img.shape)
    ctx.save_for_backward(output[1])


def _grad(ctx, grad, _grad_coords):
    (coords,) = ctx.saved_tensors
    order = torch.arange(coords.shape[0], device=coords.device)
    return gather_backward(grad, coords, order, ctx.img_size), None, None


_extract_op.register_autograd(_grad, setup_context=_setup_ctx)


def extract_patches(img: torch.Tensor, patch_size: int, stride: int):
    """All P x P patches of a grid covering the whole image.

    Along each axis of length n the corners are 0, t, 2t, ... and, when that grid stops
    short of the border, one more at n - P (no duplicate), so every pixel is covered.

    Args:
        img: (B, C, H, W) float; P <= H and P <= W.
        patch_size: P.
        stride: t > 0; with t > P the pixels between windows are not covered.

    Returns:
        patches (N, C, P, P) and coords (N, 3) int64 (batch, row, col) of each top-left
        corner, batch-major, then row, then col. Differentiable in img.
    """
    _check(img, patch_size, stride)
    return _extract_op(img, patch_size, stride)
