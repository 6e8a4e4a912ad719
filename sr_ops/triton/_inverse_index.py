"""The inverse of a neighbour index for the output-stationary backwards (cross_scale_knn,
graph_aggregate): which (b, q, r) entries chose each key patch, built without atomics.

The entries e = (b * m + q) * k + r are sorted by their global key b * n + idx[e] with a
stable sort, so each key's entries stay in e order, and each key's first entry comes from a
binary search of the sorted keys (the exclusive prefix sum of the per-key counts). Memory:
three (B * m * k) int64 arrays while sorting, and B * n + 1 offsets.
"""
from __future__ import annotations

import torch


def inverse_index(idx: torch.Tensor, n: int, index_dtype: torch.dtype):
    """idx (B, m, k) int64 in [0, n) -> (start (B * n + 1,), order (B * m * k,) int64):
    key b * n + j owns the entries order[start[b * n + j]:start[b * n + j + 1]]."""
    B = idx.shape[0]
    keys = (idx.reshape(B, -1) + torch.arange(B, device=idx.device).mul_(n)[:, None]).reshape(-1)
    sorted_keys, order = torch.sort(keys, stable=True)
    bounds = torch.arange(B * n + 1, device=idx.device)
    start = torch.searchsorted(sorted_keys, bounds, out_int32=index_dtype == torch.int32)
    return start, order


def index_dtype(*counts: int) -> torch.dtype:
    """int32 offsets unless some tensor reaches 2**31 elements."""
    return torch.int64 if max(counts) >= 2**31 else torch.int32
