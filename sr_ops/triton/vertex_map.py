"""Triton kernel for vertex_map: index arithmetic, one element per lane."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops._validate import grid
from sr_ops.triton._util import launch_grid


@triton.jit
def _map_kernel(idx, rows, cols, N, n2, step, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = offs < N
    v = tl.load(idx + offs, mask=live, other=0)
    # v >= 0 (the op checks), so C-style // and % agree with the contract's floor ones.
    tl.store(rows + offs, step * (v // n2), mask=live)
    tl.store(cols + offs, step * (v % n2), mask=live)


_BLOCK = 1024


def vertex_map_fwd(idx: torch.Tensor, key_hw, scale: int, patch_size: int, stride: int):
    idx = idx.contiguous()
    n2 = grid(key_hw[1], patch_size, stride)
    rows, cols = torch.empty_like(idx), torch.empty_like(idx)
    if idx.numel():
        _map_kernel[launch_grid(idx.numel(), _BLOCK)](idx, rows, cols, idx.numel(), n2, scale * stride,
                                                      BLOCK=_BLOCK)
    return rows, cols
