"""merge_patches: fold per-class SR outputs back into the HR image, averaging overlaps."""
from __future__ import annotations

import torch

from sr_ops import _validate as v
from sr_ops import reference
from sr_ops.backends import BackendTable, lazy
from sr_ops.ops.gather_patches import check_coords_order, check_coords_values


def _cpp_fwd(outputs, coords, order, out_size, scale):
    B, H, W = out_size
    return torch.ops.sr_ops._merge_patches_fwd(outputs, coords, order, B, H, W, scale)


def _fwd_values(outputs, coords, order, out_size, scale):
    check_coords_values(coords, order, *out_size, outputs.shape[-1] // scale)


def _bwd_values(grad, coords, order, patch_size, scale):
    check_coords_values(coords, order, grad.shape[0], grad.shape[2] // scale, grad.shape[3] // scale,
                        patch_size)  # read at


# Every forward averages each pixel's outputs in a fixed order (the GPU ones output-stationary
# through a tile index, no atomics), so all are deterministic.
_forward = BackendTable("merge_patches", reference=reference.merge_patches, cpu=_cpp_fwd, cuda=_cpp_fwd,
                        triton=lazy("sr_ops.triton.merge_patches", "merge_patches_fwd"), values=_fwd_values)
_backward = BackendTable("merge_patches", reference=reference.merge_patches_backward,
                         native="_merge_patches_bwd", triton=lazy("sr_ops.triton.merge_patches", "merge_patches_bwd"),
                         values=_bwd_values)


def _check(outputs, coords, order, out_size, scale) -> int:
    """Everything but the values of coords/order; returns the LR patch size P."""
    v.tensor(outputs, "outputs", dims=4, doc="(N, C, s*P, s*P)")
    v.positive_int(scale, "scale")
    check_coords_order(coords, order, "outputs", outputs.shape[0])
    v.same_device(coords, "coords", outputs, "outputs")
    if not isinstance(out_size, (tuple, list, torch.Size)) or len(out_size) not in (2, 3):
        raise ValueError(f"out_size must be (B, H, W) or (H, W) LR sizes, got {out_size!r}")
    for n in out_size:
        v.positive_int(n, "out_size")
    Q, Q2 = outputs.shape[-2:]
    if Q != Q2 or Q % scale != 0:
        raise ValueError(f"outputs must be (N, C, s*P, s*P) with s = scale = {scale}, "
                         f"got shape {tuple(outputs.shape)}")
    P = Q // scale
    H, W = out_size[-2:]
    v.patch_fits(P, (H, W), "out_size", f"the LR patch size (outputs' {Q} / scale {scale})")
    return P


@torch.library.custom_op("sr_ops::merge_patches", mutates_args=())
def _merge_op(outputs: torch.Tensor, coords: torch.Tensor, order: torch.Tensor, out_size: list[int],
              scale: int) -> torch.Tensor:
    P = _check(outputs, coords, order, out_size, scale)
    B = out_size[0] if len(out_size) == 3 else None
    H, W = out_size[-2:]
    if B is None:
        check_coords_values(coords, order, None, H, W, P)  # the batch count is read from coords
        B = int(coords[:, 0].max()) + 1 if coords.shape[0] else 1
    return _forward(outputs.device, outputs.contiguous(), coords.long().contiguous(), order.long().contiguous(),
                    (B, H, W), scale)


@_merge_op.register_fake
def _(outputs, coords, order, out_size, scale):
    _check(outputs, coords, order, out_size, scale)
    B = out_size[0] if len(out_size) == 3 else torch.library.get_ctx().new_dynamic_size()
    return outputs.new_empty(B, outputs.shape[1], scale * out_size[-2], scale * out_size[-1])


def _check_backward(grad, coords, order, patch_size, scale):
    """grad (B, C, s*H, s*W), the gradient of the merged HR image."""
    v.tensor(grad, "grad", dims=4, doc="(B, C, s*H, s*W)")
    v.positive_int(patch_size, "patch_size")
    v.positive_int(scale, "scale")
    check_coords_order(coords, order)
    v.same_device(coords, "coords", grad, "grad")
    v.patch_fits(scale * patch_size, grad.shape[-2:], "grad", "scale * patch_size")


@torch.library.custom_op("sr_ops::merge_patches_backward", mutates_args=())
def _merge_backward_op(grad: torch.Tensor, coords: torch.Tensor, order: torch.Tensor, patch_size: int,
                       scale: int) -> torch.Tensor:
    _check_backward(grad, coords, order, patch_size, scale)
    return _backward(grad.device, grad.contiguous(), coords.long().contiguous(), order.long().contiguous(),
                     patch_size, scale)


@_merge_backward_op.register_fake
def _(grad, coords, order, patch_size, scale):
    _check_backward(grad, coords, order, patch_size, scale)
    Q = scale * patch_size
    return grad.new_empty(order.shape[0], grad.shape[1], Q, Q)


def _setup_ctx(ctx, inputs, output):
    outputs, coords, order, _, ctx.scale = inputs
    ctx.patch_size = outputs.shape[-1] // ctx.scale
    ctx.save_for_backward(coords, order)


def _grad(ctx, grad):
    coords, order = ctx.saved_tensors
    return _merge_backward_op(grad, coords, order, ctx.patch_size, ctx.scale), None, None, None, None


def _setup_ctx_bwd(ctx, inputs, output):
    grad, coords, order, _, ctx.scale = inputs
    ctx.out_size = [grad.shape[0], grad.shape[2] // ctx.scale, grad.shape[3] // ctx.scale]
    ctx.save_for_backward(coords, order)


def _grad_bwd(ctx, grad):
    # merge is linear and its backward is its adjoint, so the backward's backward is merge.
    coords, order = ctx.saved_tensors
    return _merge_op(grad.contiguous(), coords, order, ctx.out_size, ctx.scale), None, None, None, None


_merge_op.register_autograd(_grad, setup_context=_setup_ctx)
_merge_backward_op.register_autograd(_grad_bwd, setup_context=_setup_ctx_bwd)


def merge_patches(outputs: torch.Tensor, coords: torch.Tensor, order: torch.Tensor, out_size,
                  scale: int) -> torch.Tensor:
    """Paste SR patch outputs into the HR image, each pixel the mean of the outputs covering it.

    Args:
        outputs: (N, C, s*P, s*P) float in ``order`` order: outputs[i] is the SR of LR patch
            order[i], whose top-left corner is coords[order[i]].
        coords: (N, 3) integer (batch, row, col) LR corners, as from ``extract_patches``.
        order: (N,) integer, as from ``class_dispatch``.
        out_size: (B, H, W) LR sizes (preferred: a fixed output shape), or (H, W), then
            B = coords[:, 0].max() + 1 (data-dependent).
        scale: s.

    Returns:
        (B, C, s*H, s*W): output i pasted at (s*row, s*col) of its batch image; each pixel
        the mean of the pasted pixels covering it, 0 where none does. Differentiable in
        outputs (grad_outputs[i] is the gradient's crop divided by the coverage).
    """
    _check(outputs, coords, order, out_size, scale)
    return _merge_op(outputs, coords.long(), order.long(), list(out_size), scale)
