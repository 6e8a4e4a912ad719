"""Triton kernels for class_dispatch: argmax + class counts, then each patch's stable rank.

The rank of patch i is #{j : id_j < id_i} + #{j < i : id_j == id_i}: a comparison count
over all patches (O(N^2 / BLOCK) programs' work), fine for the few thousand patches of an
image and free of any sort primitive.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops.triton._util import acc_dtype, launch_grid


@triton.jit
def _classes_kernel(x, ids, counts, N, K, LOGITS: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = rows < N
    if LOGITS:
        # First maximum wins; a NaN counts as the maximum (torch.argmax).
        best = tl.load(x + rows * K, mask=live, other=0.0).to(ACC)
        best_nan = best != best
        cls = tl.zeros([BLOCK], dtype=tl.int64)
        for k in range(1, K):
            v = tl.load(x + rows * K + k, mask=live, other=0.0).to(ACC)
            take = (~best_nan) & ((v != v) | (v > best))
            best = tl.where(take, v, best)
            cls = tl.where(take, k, cls)
            best_nan = best_nan | (v != v)
    else:
        cls = tl.load(x + rows, mask=live, other=0)
    tl.store(ids + rows, cls, mask=live)
    tl.atomic_add(counts + cls, tl.full([BLOCK], 1, tl.int64), mask=live)


@triton.jit
def _rank_kernel(ids, order, N, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = i < N
    ci = tl.load(ids + i, mask=live, other=0)
    rank = tl.zeros([BLOCK], dtype=tl.int64)
    for start in range(0, N, BLOCK):
        j = start + tl.arange(0, BLOCK)
        cj = tl.load(ids + j, mask=j < N, other=0)
        before = (cj[None, :] < ci[:, None]) | ((cj[None, :] == ci[:, None]) & (j[None, :] < i[:, None]))
        before = before & (j[None, :] < N)
        rank += tl.sum(before.to(tl.int64), axis=1)
    tl.store(order + rank, i, mask=live)


_BLOCK = 64


def class_dispatch_fwd(x: torch.Tensor, num_classes: int):
    x = x.contiguous()
    N = x.shape[0]
    ids = torch.empty(N, device=x.device, dtype=torch.int64)
    counts = torch.zeros(num_classes, device=x.device, dtype=torch.int64)
    order = torch.empty(N, device=x.device, dtype=torch.int64)
    if N:
        logits = x.is_floating_point()
        _classes_kernel[launch_grid(N, _BLOCK)](x, ids, counts, N, num_classes if logits else 1,
                                                LOGITS=logits, ACC=acc_dtype(x.dtype), BLOCK=_BLOCK)
        _rank_kernel[launch_grid(N, _BLOCK)](ids, order, N, BLOCK=_BLOCK)
    return order, counts
