"""Triton kernels for extract_patches: the covering grid's corners, then the shared crop."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops.reference.extract_patches import grid_count
from sr_ops.triton._util import launch_grid
from sr_ops.triton.gather_patches import crop


@triton.jit
def _corner_kernel(coords, N, H, W, P, T, m1, m2, BLOCK: tl.constexpr):
    q = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = q < N
    k = q % (m1 * m2)
    # The last corner of each axis is clamped to end at the border (n - P).
    tl.store(coords + 3 * q, q // (m1 * m2), mask=live)
    tl.store(coords + 3 * q + 1, tl.minimum(T * (k // m2), H - P), mask=live)
    tl.store(coords + 3 * q + 2, tl.minimum(T * (k % m2), W - P), mask=live)


_BLOCK = 256


def extract_patches_fwd(img: torch.Tensor, patch_size: int, stride: int):
    B, _, H, W = img.shape
    m1, m2 = grid_count(H, patch_size, stride), grid_count(W, patch_size, stride)
    N = B * m1 * m2
    coords = torch.empty(N, 3, device=img.device, dtype=torch.int64)
    _corner_kernel[launch_grid(N, _BLOCK)](coords, N, H, W, patch_size, stride, m1, m2, BLOCK=_BLOCK)
    order = torch.arange(N, device=img.device)
    return crop(img, coords, order, patch_size), coords
