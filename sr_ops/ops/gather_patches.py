"""gather_patches: crop the patches of a dispatch order straight out of the image."""
from __future__ import annotations

import torch

from sr_ops import _validate as v
from sr_ops import reference
from sr_ops.backends import BackendTable, lazy


def _cpp_fwd(img, coords, order, patch_size):
    return torch.ops.sr_ops._gather_patches_fwd(img, coords, order, patch_size)


def _cpp_bwd(grad, coords, order, img_size):
    if img_size[0] == 0:
        # The C++ check (csrc/checks/class_windows.h) wants B > 0; an empty batch takes no
        # window, so its gradient is empty (any coords left raise as on the other backends).
        _bwd_values(grad, coords, order, img_size)
        return grad.new_zeros(img_size)
    return torch.ops.sr_ops._gather_patches_bwd(grad, coords, order, img_size[0], img_size[2], img_size[3])


def _fwd_values(img, coords, order, patch_size):
    check_coords_values(coords, order, img.shape[0], img.shape[2], img.shape[3], patch_size)


def _bwd_values(grad, coords, order, img_size):
    check_coords_values(coords, order, img_size[0], img_size[2], img_size[3], grad.shape[-1])  # written at


_forward = BackendTable("gather_patches", reference=reference.gather_patches, cpu=_cpp_fwd, cuda=_cpp_fwd,
                        triton=lazy("sr_ops.triton.gather_patches", "gather_patches_fwd"), values=_fwd_values)
# Every backward sums each pixel's windows in a fixed order (the GPU ones output-stationary
# through a tile index, no atomics), so all are deterministic.
_backward = BackendTable("gather_patches", reference=reference.gather_patches_backward, cpu=_cpp_bwd, cuda=_cpp_bwd,
                         triton=lazy("sr_ops.triton.gather_patches", "gather_patches_bwd"), values=_bwd_values)


def check_coords_order(coords, order, n_name: str | None = None, n: int | None = None) -> int:
    """Shapes and dtypes of coords (N, 3) and order (N,); also N == n when given. Returns N."""
    v.tensor(coords, "coords", kind="int", dims=2, doc="(N, 3)")
    v.tensor(order, "order", kind="int", dims=1, doc="(N,)")
    if coords.shape[1] != 3:
        raise ValueError(f"coords must be (N, 3) (batch, row, col), got shape {tuple(coords.shape)}")
    N = coords.shape[0]
    if order.shape[0] != N:
        raise ValueError(f"order must have coords' N={N} entries, got shape {tuple(order.shape)}")
    if n is not None and n != N:
        raise ValueError(f"{n_name} must have the N={N} patches of coords and order, got {n}")
    v.same_device(order, "order", coords, "coords")
    return N


def check_coords_values(coords, order, B: int | None, H: int, W: int, P: int) -> None:
    """Values (real tensors only): every order entry indexes coords, every window fits."""
    if coords.shape[0] == 0:
        return
    v.index_range(order, coords.shape[0], "order", "the rows of coords")
    # amin/amax: min(dim=0) on a tall (N, 3) int64 tensor is orders of magnitude slower.
    lo, hi = coords.amin(0).tolist(), coords.amax(0).tolist()
    limits = (("batch", B), ("row", H - P + 1), ("col", W - P + 1))
    for k, (what, top) in enumerate(limits):
        if lo[k] < 0 or (top is not None and hi[k] >= top):
            bound = f"[0, {top})" if top is not None else "[0, inf)"
            raise ValueError(f"coords {what} values must lie in {bound} for patch_size {P} and LR size "
                             f"{(B, H, W)}, got range [{lo[k]}, {hi[k]}]")


def _check(img, coords, order, patch_size):
    v.tensor(img, "img", dims=4, doc="(B, C, H, W)")
    v.positive_int(patch_size, "patch_size")
    check_coords_order(coords, order)
    v.same_device(coords, "coords", img, "img")
    v.patch_fits(patch_size, img.shape[-2:], "img")


@torch.library.custom_op("sr_ops::gather_patches", mutates_args=())
def _gather_op(img: torch.Tensor, coords: torch.Tensor, order: torch.Tensor, patch_size: int) -> torch.Tensor:
    _check(img, coords, order, patch_size)
    return _forward(img.device, img, coords.long().contiguous(), order.long().contiguous(), patch_size)


@_gather_op.register_fake
def _(img, coords, order, patch_size):
    _check(img, coords, order, patch_size)
    return img.new_empty(order.shape[0], img.shape[1], patch_size, patch_size)


def _check_backward(grad, coords, order, img_size):
    """grad (N, C, P, P) patch gradients, img_size (B, C, H, W) of the image they came from."""
    v.tensor(grad, "grad", dims=4, doc="(N, C, P, P)")
    check_coords_order(coords, order, "grad", grad.shape[0])
    v.same_device(coords, "coords", grad, "grad")
    if len(img_size) != 4 or img_size[1] != grad.shape[1]:
        raise ValueError(f"img_size must be (B, C, H, W) with grad's C={grad.shape[1]}, got {tuple(img_size)}")
    if grad.shape[-1] != grad.shape[-2]:
        raise ValueError(f"grad must hold square patches (N, C, P, P), got shape {tuple(grad.shape)}")
    v.patch_fits(grad.shape[-1], img_size[-2:], "img_size", "the patch size")


@torch.library.custom_op("sr_ops::gather_patches_backward", mutates_args=())
def _gather_backward_op(grad: torch.Tensor, coords: torch.Tensor, order: torch.Tensor,
                        img_size: list[int]) -> torch.Tensor:
    _check_backward(grad, coords, order, img_size)
    return _backward(grad.device, grad.contiguous(), coords.long().contiguous(), order.long().contiguous(),
                     img_size)


@_gather_backward_op.register_fake
def _(grad, coords, order, img_size):
    _check_backward(grad, coords, order, img_size)
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
