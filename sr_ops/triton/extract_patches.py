"""Triton kernels for extract_patches: the covering grid's corners, then the shared crop
(gather_patches' kernel).

The corner numbers q and their divisions run in int32 unless coords (3 int64 per corner)
has so many elements that its offsets leave int32: only then does the wrapper pick the
INDEX64 variant."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops.reference.extract_patches import grid_count
from sr_ops.triton._util import launch_grid
from sr_ops.triton.gather_patches import crop


@triton.jit
def _corner_kernel(coords, N, H, W, P, T, m1, m2, BLOCK: tl.constexpr, INDEX64: tl.constexpr):
    if INDEX64:
        q = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:
        q = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = q < N
    k = q % (m1 * m2)
    # The last corner of each axis is clamped to end at the border (n - P).
    tl.store(coords + 3 * q, (q // (m1 * m2)).to(tl.int64), mask=live)
    tl.store(coords + 3 * q + 1, tl.minimum(T * (k // m2), H - P).to(tl.int64), mask=live)
    tl.store(coords + 3 * q + 2, tl.minimum(T * (k % m2), W - P).to(tl.int64), mask=live)


_BLOCK = 256


def index64(n_corners: int) -> bool:
    """Whether coords' offsets (3 per corner, the last program's spare lanes included) need int64."""
    return 3 * (n_corners + _BLOCK) >= 2**31


def extract_patches_fwd(img: torch.Tensor, patch_size: int, stride: int):
    B, _, H, W = img.shape
    m1, m2 = grid_count(H, patch_size, stride), grid_count(W, patch_size, stride)
    N = B * m1 * m2
    coords = torch.empty(N, 3, device=img.device, dtype=torch.int64)
    if N:
        _corner_kernel[launch_grid(N, _BLOCK)](coords, N, H, W, patch_size, stride, m1, m2, BLOCK=_BLOCK,
                                               INDEX64=index64(N))
    order = torch.arange(N, device=img.device)
    return crop(img, coords, order, patch_size), coords
