"""Triton kernels for gather_patches, and the crop / paste launchers merge and extract reuse.

Crops are output-stationary (one lane per output element, reading through `order`);
pastes scatter with atomic adds into a float32 (float64 for float64) accumulator,
since windows may sit anywhere and overlap. The accumulator is float64 for float32 (as in
the reference) so that averaging identical overlaps returns the value bit for bit.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops.reference.gather_patches import wide
from sr_ops.triton._util import acc_dtype, launch_grid


@triton.jit
def _pixel(coords, order, offs, C, Q, scale, live):
    """Element offs of a (N, C, Q, Q) window stack -> (batch, channel, row, col) in the image."""
    px = offs % Q
    py = (offs // Q) % Q
    c = (offs // (Q * Q)) % C
    q = tl.load(order + offs // (Q * Q * C), mask=live, other=0)
    b = tl.load(coords + 3 * q, mask=live, other=0)
    y = scale * tl.load(coords + 3 * q + 1, mask=live, other=0) + py
    x = scale * tl.load(coords + 3 * q + 2, mask=live, other=0) + px
    return b, c, y, x


@triton.jit
def _crop_kernel(src, dst, coords, order, count, n, C, H, W, Q, scale, HAS_COUNT: tl.constexpr,
                 ACC: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = offs < n
    b, c, y, x = _pixel(coords, order, offs, C, Q, scale, live)
    v = tl.load(src + ((b * C + c) * H + y) * W + x, mask=live, other=0.0)
    if HAS_COUNT:  # merge's backward: divide by the pixel's coverage
        cnt = tl.load(count + (b * H + y) * W + x, mask=live, other=1)
        v = v.to(ACC) / tl.maximum(cnt, 1).to(ACC)
    tl.store(dst + offs, v.to(dst.dtype.element_ty), mask=live)


@triton.jit
def _paste_kernel(src, acc, coords, order, n, C, H, W, Q, scale, ONES: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = offs < n
    b, c, y, x = _pixel(coords, order, offs, C, Q, scale, live)
    dst = acc + ((b * C + c) * H + y) * W + x
    if ONES:  # coverage count: the window adds 1 to each pixel it covers
        tl.atomic_add(dst, tl.full([BLOCK], 1, tl.int32), mask=live)
    else:
        v = tl.load(src + offs, mask=live, other=0.0)
        tl.atomic_add(dst, v.to(acc.dtype.element_ty), mask=live)


_BLOCK = 256


def crop(src: torch.Tensor, coords, order, size: int, scale: int = 1, count=None) -> torch.Tensor:
    """(B, C, H, W) -> (N, C, size, size) windows at scale*corner, / count (B, H, W) if given."""
    src = src.contiguous()
    _, C, H, W = src.shape
    out = src.new_empty(order.shape[0], C, size, size)
    n = out.numel()
    if n:
        _crop_kernel[launch_grid(n, _BLOCK)](src, out, coords, order, count if count is not None else coords,
                                             n, C, H, W, size, scale, HAS_COUNT=count is not None,
                                             ACC=acc_dtype(src.dtype), BLOCK=_BLOCK)
    return out


def paste(src: torch.Tensor, coords, order, out_hw, B: int, scale: int = 1) -> torch.Tensor:
    """Sum of the (N, C, Q, Q) windows pasted at scale*corner: (B, C, H, W) in wide(src.dtype)."""
    N, C, Q, _ = src.shape
    acc = torch.zeros(B, C, *out_hw, device=src.device, dtype=wide(src.dtype))
    if src.numel():
        _paste_kernel[launch_grid(src.numel(), _BLOCK)](src.contiguous(), acc, coords, order, src.numel(), C,
                                                        *out_hw, Q, scale, ONES=False, BLOCK=_BLOCK)
    return acc


def coverage(coords, order, out_hw, B: int, size: int, scale: int) -> torch.Tensor:
    """(B, H, W) int32: how many size x size windows at scale*corner cover each pixel."""
    count = torch.zeros(B, *out_hw, device=coords.device, dtype=torch.int32)
    n = order.shape[0] * size * size
    if n:
        _paste_kernel[launch_grid(n, _BLOCK)](count, count, coords, order, n, 1, *out_hw, size, scale,
                                              ONES=True, BLOCK=_BLOCK)
    return count


def gather_patches_fwd(img: torch.Tensor, coords, order, patch_size: int) -> torch.Tensor:
    return crop(img, coords, order, patch_size)


def gather_patches_bwd(grad: torch.Tensor, coords, order, img_size) -> torch.Tensor:
    B, _, H, W = img_size
    return paste(grad, coords, order, (H, W), B).to(grad.dtype)
