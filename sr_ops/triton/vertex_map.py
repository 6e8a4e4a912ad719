"""Triton kernel for vertex_map: index arithmetic, one element per lane.

The division idx // n2 runs in int32 (div.s32, about a third of div.s64's ~70 instructions)
unless the key grid has 2**31 patches or more, or idx has so many elements that the lanes'
offsets leave int32: only then does the wrapper pick the INDEX64 variant."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops._validate import grid
from sr_ops.triton._util import launch_grid


@triton.jit
def _map_kernel(idx, rows, cols, N, n2, step, BLOCK: tl.constexpr, INDEX64: tl.constexpr):
    if INDEX64:
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = offs < N
    v = tl.load(idx + offs, mask=live, other=0)
    if not INDEX64:
        v = v.to(tl.int32)  # 0 <= v < n1*n2 < 2**31 (the op checks the values)
    # v >= 0, so C-style // and % agree with the contract's floor ones. The products are
    # int64: s*t*(n1 - 1) may pass 2**31 where the quotient does not.
    tl.store(rows + offs, step * (v // n2).to(tl.int64), mask=live)
    tl.store(cols + offs, step * (v % n2).to(tl.int64), mask=live)


_BLOCK = 1024


def index64(n: int, n_patches: int) -> bool:
    """Whether the kernel needs int64: n elements (plus the last program's spare lanes,
    whose offsets must not wrap into live ones) or patch numbers past int32."""
    return n + _BLOCK >= 2**31 or n_patches >= 2**31


def vertex_map_fwd(idx: torch.Tensor, key_hw, scale: int, patch_size: int, stride: int):
    idx = idx.contiguous()
    n1, n2 = grid(key_hw[0], patch_size, stride), grid(key_hw[1], patch_size, stride)
    rows, cols = torch.empty_like(idx), torch.empty_like(idx)
    n = idx.numel()
    if n:
        _map_kernel[launch_grid(n, _BLOCK)](idx, rows, cols, n, n2, scale * stride, BLOCK=_BLOCK,
                                            INDEX64=index64(n, n1 * n2))
    return rows, cols
