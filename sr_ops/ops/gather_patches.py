"""gather_patches: crop the patches of a dispatch order straight out of the image."""
from __future__ import annotations

import torch

from sr_ops import reference
from sr_ops.backends import BackendTable, Kernel, lazy
from sr_ops.ops import _validate as v


def _cpp_fwd(img, coords, order, patch_size):
    return torch.ops.sr_ops._gather_patches_fwd(img, coords, order, patch_size)


def _cpp_bwd(grad, coords, order, img_size):
    return torch.ops.sr_ops._gather_patches_bwd(grad, coords, order, img_size[0], img_size[2], img_size[3])


_forward = BackendTable("gather_patches", reference=reference.gather_patches, cpu=_cpp_fwd, cuda=_cpp_fwd,
                        triton=lazy("sr_ops.triton.gather_patches", "gather_patches_fwd"))
# The GPU backwards paste overlapping windows with atomic adds.
_backward = BackendTable("gather_patches", reference=reference.gather_patches_backward, cpu=_cpp_bwd,
                         cuda=Kernel(_cpp_bwd, deterministic=False),
                         triton=Kernel(lazy("sr_ops.triton.gather_patches", "gather_patches_bwd"), deterministic=False))


def index_tensor(x, name: str, dim: int, shape_doc: str):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {x.dtype}")
    if x.dim() != dim:
        raise ValueError(f"{name} must have {dim} dims {shape_doc}, got shape {tuple(x.shape)}")
    return x


def check_coords_order(coords, order, n_name: str | None = None, n: int | None = None) -> int:
    """Shapes and dtypes of coords (N, 3) and order (N,); also N == n when given. Returns N."""
    index_tensor(coords, "coords", 2, "(N, 3)")
    index_tensor(order, "order", 1, "(N,)")
    if coords.shape[1] != 3:
        raise ValueError(f"coords must be (N, 3) (batch, row, col), got shape {tuple(coords.shape)}")
    N = coords.shape[0]
    if order.shape[0] != N:
        raise ValueError(f"order has {order.shape[0]} entries but coords has N={N} patches")
    if n is not None and n != N:
        raise ValueError(f"{n_name} has {n} patches but coords and order have N={N}")
    if coords.device != order.device:
        raise ValueError(f"coords ({coords.device}) and order ({order.device}) must be on the same device")
    return N


def check_coords_values(coords, order, B: int | None, H: int, W: int, P: int) -> None:
    """Values (real tensors only): every order entry indexes coords, every window fits."""
    if coords.shape[0] == 0:
        return
    o_lo, o_hi = int(order.min()), int(order.max())
    if o_lo < 0 or o_hi >= coords.shape[0]:
        raise ValueError(f"order values must lie in [0, {coords.shape[0]}), got range [{o_lo}, {o_hi}]")
    # amin/amax: min(dim=0) on a tall (N, 3) int64 tensor is orders of magnitude slower.
    lo, hi = coords.amin(0).tolist(), coords.amax(0).tolist()
    limits = (("batch", B), ("row", H - P + 1), ("col", W - P + 1))
    for k, (what, top) in enumerate(limits):
        if lo[k] < 0 or (top is not None and hi[k] >= top):
            bound = f"[0, {top})" if top is not None else "[0, inf)"
            raise ValueError(f"coords {what} values must lie in {bound} for patch_size {P} and LR size "
                             f"{(B, H, W)}, got range [{lo[k]}, {hi[k]}]")


def _check(img, coords, order, patch_size):
    v.tensor(img, "img", dim=4, shape_doc="(B, C, H, W)")
    v.positive_int(patch_size, "patch_size")
    check_coords_order(coords, order)
    if coords.device != img.device:
        raise ValueError(f"coords ({coords.device}) must be on img's device ({img.device})")
    B, _, H, W = img.shape
    if patch_size > H or patch_size > W:
        raise ValueError(f"patch_size {patch_size} is larger than the image ({H}, {W})")


@torch.library.custom_op("sr_ops::gather_patches", mutates_args=())
def _gather_op(img: torch.Tensor, coords: torch.Tensor, order: torch.Tensor, patch_size: int) -> torch.Tensor:
    _check(img, coords, order, patch_size)
    B, _, H, W = img.shape
    check_coords_values(coords, order, B, H, W, patch_size)
    return _forward(img.device, img, coords.long().contiguous(), order.long().contiguous(), patch_size)


@_gather_op.register_fake
def _(img, coords, order, patch_size):
    _check(img, coords, order, patch_size)
    return img.new_empty(order.shape[0], img.shape[1], patch_size, patch_size)


@torch.library.custom_op("sr_ops::gather_patches_backward", mutates_args=())
def _gather_backward_op(grad: torch.Tensor, coords: torch.Tensor, order: torch.Tensor,
                        img_size: list[int]) -> torch.Tensor:
    return _backward(grad.device, grad.contiguous(), coords.long().contiguous(), order.long().contiguous(),
                     img_size)


@_gather_backward_op.register_fake
def _(grad, coords, order, img_size):
    return grad.new_empty(img_size)


def _setup_ctx(ctx, inputs, output):
    img, coords, order, ctx.patch_size = inputs
    ctx.img_size = list(img.shape)
    ctx.save_for_backward(coords, order)


def _grad(ctx, grad):
    coords, order = ctx.saved_tensors
    return _gather_backward_op(grad, coords, order, ctx.img_size), None, None, None


def _setup_ctx_bwd(ctx, inputs, output):
    grad, coords, order, _ = inputs
    ctx.patch_size = grad.shape[-1]
    ctx.save_for_backward(coords, order)


def _grad_bwd(ctx, grad):
    # The backward is linear in grad_patches, and its adjoint is the crop itself.
    coords, order = ctx.saved_tensors
    return _gather_op(grad.contiguous(), coords, order, ctx.patch_size), None, None, None


_gather_op.register_autograd(_grad, setup_context=_setup_ctx)
_gather_backward_op.register_autograd(_grad_bwd, setup_context=_setup_ctx_bwd)


def gather_backward(grad, coords, order, img_size):
    """Scatter-add of (N, C, P, P) patch gradients into a zero (B, C, H, W) image (extract's backward too)."""
    return _gather_backward_op(grad, coords, order, list(img_size))


def gather_patches(img: torch.Tensor, coords: torch.Tensor, order: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Crop patches in dispatch order straight from the image.

    Args:
        img: (B, C, H, W) float.
        coords: (N, 3) integer (batch, row, col) top-left corners, e.g. from ``extract_patches``;
            every window must fit: ``0 <= row <= H - P``, ``0 <= col <= W - P``, ``0 <= batch < B``.
        order: (N,) integer indices into coords, e.g. from ``class_dispatch``.
        patch_size: P.

    Returns:
        (N, C, P, P): ``out[i] = img[b, :, r:r+P, c:c+P]`` with ``(b, r, c) = coords[order[i]]``;
        contiguous, so each class's patches ``out[start:start + counts[k]]`` form one batch.
        Differentiable in img (the backward adds each patch gradient back into its window).
    """
    _check(img, coords, order, patch_size)
    return _gather_op(img, coords.long(), order.long(), patch_size)
