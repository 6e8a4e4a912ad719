"""Triton kernels for class_dispatch: a parallel stable counting sort, no atomics.

Each program classifies BLOCK patches (argmax of the logits, or the ids) and writes its
per-class counts into a (K, programs) table; the wrapper's exclusive integer prefix sum
over that table (class-major) gives where each program's first patch of each class goes;
a second pass places every patch there plus its rank among the program's earlier patches
of its class. The order is the reference's stable sort on every run.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops.triton._util import acc_dtype


@triton.jit
def _rank(cls, BLOCK: tl.constexpr):
    """Per lane: its rank among the lower lanes of its class, and its class's lane count."""
    lane = tl.arange(0, BLOCK)
    same = cls[:, None] == cls[None, :]
    rank = tl.sum((same & (lane[None, :] < lane[:, None])).to(tl.int32), axis=1)
    return rank, tl.sum(same.to(tl.int32), axis=1)


@triton.jit
def _hist_kernel(x, ids, hist, N, K, LOGITS: tl.constexpr, ACC: tl.constexpr, IDX: tl.constexpr,
                 BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid.to(IDX) * BLOCK + tl.arange(0, BLOCK)
    live = rows < N
    if LOGITS:
        # First maximum wins; a NaN counts as the maximum (torch.argmax).
        best = tl.load(x + rows * K, mask=live, other=0.0).to(ACC)
        best_nan = best != best
        cls = tl.zeros([BLOCK], dtype=tl.int32)
        for k in range(1, K):
            v = tl.load(x + rows * K + k, mask=live, other=0.0).to(ACC)
            take = (~best_nan) & ((v != v) | (v > best))
            best = tl.where(take, v, best)
            cls = tl.where(take, k, cls)
            best_nan = best_nan | (v != v)
    else:
        cls = tl.load(x + rows, mask=live, other=0).to(tl.int32)
    cls = tl.where(live, cls, -1)
    tl.store(ids + rows, cls, mask=live)
    rank, total = _rank(cls, BLOCK)
    # The class's first lane writes the count: distinct addresses, no atomics.
    tl.store(hist + cls * tl.num_programs(0) + pid, total.to(tl.int64), mask=live & (rank == 0))


@triton.jit
def _place_kernel(ids, offsets, order, N, IDX: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid.to(IDX) * BLOCK + tl.arange(0, BLOCK)
    live = rows < N
    cls = tl.load(ids + rows, mask=live, other=-1)
    rank, _ = _rank(cls, BLOCK)
    start = tl.load(offsets + cls * tl.num_programs(0) + pid, mask=live, other=0)
    tl.store(order + start + rank, rows.to(tl.int64), mask=live)


def block_for(N: int) -> int:
    """Patches per program: 8..64, so ClassSR's ~3000 patches of a 2K image make more than
    two waves of an H100's 132 SMs."""
    b = 8
    while b < 64 and b * 2 * 264 <= N:
        b *= 2
    return b


def class_dispatch_fwd(x: torch.Tensor, num_classes: int):
    x = x.contiguous()
    N = x.shape[0]
    if N == 0:
        z = torch.zeros(num_classes, device=x.device, dtype=torch.int64)
        return torch.empty(0, device=x.device, dtype=torch.int64), z
    block = block_for(N)
    programs = triton.cdiv(N, block)
    ids = torch.empty(N, device=x.device, dtype=torch.int32)
    hist = torch.zeros(num_classes, programs, device=x.device, dtype=torch.int64)
    order = torch.empty(N, device=x.device, dtype=torch.int64)
    logits = x.is_floating_point()
    # int32 offsets unless the logits reach 2**31 elements
    idx = tl.int64 if x.numel() + block >= 2**31 else tl.int32
    _hist_kernel[(programs,)](x, ids, hist, N, num_classes if logits else 1, LOGITS=logits, ACC=acc_dtype(x.dtype),
                              IDX=idx, BLOCK=block, num_warps=1)
    flat = hist.flatten()
    offsets = flat.cumsum(0) - flat  # exclusive; integer, so exact
    _place_kernel[(programs,)](ids, offsets, order, N, IDX=idx, BLOCK=block, num_warps=1)
    return order, hist.sum(1)
