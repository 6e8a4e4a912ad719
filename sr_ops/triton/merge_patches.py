"""Triton kernels for merge_patches: atomic paste + coverage, then one averaging pass."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops.triton._util import launch_grid
from sr_ops.triton.gather_patches import coverage, crop, paste


@triton.jit
def _mean_kernel(acc, count, dst, n, C, HW, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = offs < n
    pix = (offs // (C * HW)) * HW + offs % HW
    cnt = tl.load(count + pix, mask=live, other=0)
    s = tl.load(acc + offs, mask=live, other=0.0)
    out = tl.where(cnt > 0, s / tl.maximum(cnt, 1).to(s.dtype), 0.0)
    tl.store(dst + offs, out.to(dst.dtype.element_ty), mask=live)


_BLOCK = 1024


def merge_patches_fwd(outputs: torch.Tensor, coords, order, out_size, scale: int) -> torch.Tensor:
    B, H, W = out_size
    N, C, Q, _ = outputs.shape
    hw = (scale * H, scale * W)
    acc = paste(outputs, coords, order, hw, B, scale)
    count = coverage(coords, order, hw, B, Q, scale)
    out = outputs.new_empty(B, C, *hw)
    if out.numel():
        _mean_kernel[launch_grid(out.numel(), _BLOCK)](acc, count, out, out.numel(), C, hw[0] * hw[1],
                                                       BLOCK=_BLOCK)
    return out


def merge_patches_bwd(grad: torch.Tensor, coords, order, patch_size: int, scale: int) -> torch.Tensor:
    B, _, HH, WW = grad.shape
    Q = scale * patch_size
    count = coverage(coords, order, (HH, WW), B, Q, scale)
    return crop(grad, coords, order, Q, scale, count)
