"""cross_scale_knn the pure-PyTorch way.

Both maps are unfolded into patch vectors; squared L2 distances come from one matmul per
chunk of queries (|q|^2 + |c|^2 - 2 q.c), out-of-window candidates are set to +inf, the
few candidates that the matmul's rounding leaves in doubt are measured again directly
(identical key patches once), and a stable sort picks the k nearest. The chosen distances
are then recomputed exactly, with autograd, as sum((q - c)^2).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sr_ops import _validate as v
from sr_ops._validate import grid, positive_int  # noqa: F401  (also imported from here)


def window_start(i, scale: int, window: int, n: int, w: int, offset: int | None = None):
    """First key row (or column) of the search window of query row (or column) `i`.

    `n` key patches along the axis, `w = min(window, n)` of them searched:
    `clamp(i // scale - offset, 0, n - w)`, offset `window // 2` unless given (`scale`
    here is the divisor of the window rule). `i` is an int or an int64 tensor.
    """
    start = i // scale - (window // 2 if offset is None else offset)
    if isinstance(start, torch.Tensor):
        return start.clamp(0, n - w)
    return min(max(start, 0), n - w)


def window_mask(q: torch.Tensor, m2: int, n1: int, n2: int, scale: int, window: int,
                offset: int | None = None) -> torch.Tensor:
    """(L, n1*n2) bool: which key patches are candidates of the query patches `q` (L,) int64
    of a query grid `m2` patches wide (window rule: see window_start)."""
    i, j = q // m2, q % m2
    w1, w2 = min(window, n1), min(window, n2)
    a0 = window_start(i, scale, window, n1, w1, offset)[:, None]
    b0 = window_start(j, scale, window, n2, w2, offset)[:, None]
    a = torch.arange(n1, device=q.device)
    b = torch.arange(n2, device=q.device)
    rows_in = (a >= a0) & (a < a0 + w1)  # (L, n1)
    cols_in = (b >= b0) & (b < b0 + w2)  # (L, n2)
    return (rows_in[:, :, None] & cols_in[:, None, :]).reshape(len(q), n1 * n2)


def _window_rule(window_start) -> tuple[int, int]:
    """(divisor, offset) of a window_start argument: a positive and a non-negative int."""
    if not isinstance(window_start, (tuple, list)) or len(window_start) != 2:
        raise TypeError(f"window_start must be a (divisor, offset) pair of ints, got {window_start!r}")
    divisor, offset = window_start
    positive_int(divisor, "window_start divisor")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"window_start offset must be an int >= 0, got {offset!r}")
    return divisor, offset


def check(query, key, k, patch_size, stride, window, scale) -> tuple[int, int]:
    """The arguments' checks, shared with the public op; returns (m, n), the numbers of
    query and key patches. window None: every key patch is a candidate."""
    v.tensor(query, "query", dims=4, doc="(B, C, H, W)")
    v.tensor(key, "key", dims=4, doc="(B, C, Hk, Wk)")
    for val, name in [(k, "k"), (patch_size, "patch_size"), (stride, "stride"), (scale, "scale")]:
        positive_int(val, name)
    if window is not None:
        positive_int(window, "window")
    v.channels(query, "query", "cross_scale_knn")
    if key.shape[:2] != query.shape[:2]:
        raise ValueError(f"key must be (B, C, Hk, Wk) with query's B and C, got shape {tuple(key.shape)}")
    v.same_dtype(query=query, key=key)
    v.same_device(key, "key", query, "query")
    v.patch_fits(patch_size, query.shape[-2:], "query")
    v.patch_fits(patch_size, key.shape[-2:], "key")
    m1, m2 = grid(query.shape[-2], patch_size, stride), grid(query.shape[-1], patch_size, stride)
    n1, n2 = grid(key.shape[-2], patch_size, stride), grid(key.shape[-1], patch_size, stride)
    count = n1 * n2 if window is None else min(window, n1) * min(window, n2)
    if k > count:
        raise ValueError(f"k must be at most the {count} candidate key patches of each query "
                         f"(key grid {n1}x{n2}, window={window}), got k={k}")
    return m1 * m2, n1 * n2


def check_backward(grad_dist, idx, query, key, patch_size, stride, values: bool = True) -> None:
    """The backward's arguments: idx (B, m, k) int64 key-patch numbers, grad_dist like it.
    values: also check idx's range (reads the data; not under fake tensors)."""
    v.tensor(query, "query", dims=4, doc="(B, C, H, W)")
    v.tensor(key, "key", dims=4, doc="(B, C, Hk, Wk)")
    positive_int(patch_size, "patch_size")
    positive_int(stride, "stride")
    v.same_dtype(query=query, key=key)
    v.same_device(key, "key", query, "query")
    v.patch_fits(patch_size, query.shape[-2:], "query")
    v.patch_fits(patch_size, key.shape[-2:], "key")
    m = grid(query.shape[-2], patch_size, stride) * grid(query.shape[-1], patch_size, stride)
    n = grid(key.shape[-2], patch_size, stride) * grid(key.shape[-1], patch_size, stride)
    v.tensor(idx, "idx", kind="int", dims=3, doc="(B, m, k)")
    if idx.shape[:2] != (query.shape[0], m):
        raise ValueError(f"idx must be (B, m, k) = ({query.shape[0]}, {m}, k) for query {tuple(query.shape)}, "
                         f"got shape {tuple(idx.shape)}")
    v.tensor(grad_dist, "grad_dist")
    v.shape_like(grad_dist, "grad_dist", idx.shape, "idx")
    v.same_device(idx, "idx", query, "query")
    v.same_device(grad_dist, "grad_dist", query, "query")
    if values:
        v.index_range(idx, n, "idx", "the key patches")


def _check(query, key, k, patch_size, stride, window, scale, chunk_size):
    check(query, key, k, patch_size, stride, window, scale)
    positive_int(chunk_size, "chunk_size")


def _nearest(q: torch.Tensor, u: torch.Tensor, inv: torch.Tensor, inside: torch.Tensor, k: int,
             pairs_per_step: int) -> torch.Tensor:
    """(L, k) int64: the k nearest candidates of each query vector, ties to the smaller index.

    q (L, D) query patches; u (U, D) the distinct key patches, key patch j being u[inv[j]];
    inside (L, n) bool, the candidates of each query.
    """
    q_sq, u_sq = q.pow(2).sum(-1), u.pow(2).sum(-1)
    d = (q_sq[:, None] + u_sq - 2 * (q @ u.T)).clamp_(min=0)  # (L, U); may cancel below 0
    # A patch holding inf or NaN (or so large that its norm overflows) gives no usable
    # expansion: rank it as +inf here and measure it directly below.
    unsure = ~d.isfinite()
    d = d.masked_fill(unsure, float("inf"))
    kth = d[:, inv].masked_fill(~inside, float("inf")).kthvalue(k, dim=-1, keepdim=True).values
    # The matmul only shortlists: it cancels badly for near neighbours. Its error is at most
    # tol * (|q|^2 + |c|^2) (three sums of D terms, each off by about D * eps times that; the
    # direct sum below by less), so no patch beyond kth + 2 * that can be, or tie with, one
    # of the k nearest; those within are measured again as sum((q - c)^2).
    tol = 2 * (q.shape[-1] + 2) * torch.finfo(q.dtype).eps
    finite_u = u_sq[u_sq.isfinite()]
    u_max = finite_u.max() if finite_u.numel() else u_sq.new_zeros(())
    bound = kth + 2 * tol * (q_sq[:, None] + u_max)
    bound = bound.masked_fill(bound.isnan() | kth.isinf(), float("inf"))  # fewer than k finite: all
    inside_u = torch.zeros_like(d).index_add_(1, inv, inside.to(d.dtype)) > 0
    near = inside_u & ((d <= bound) | unsure)
    rows, cols = near.nonzero(as_tuple=True)
    exact = torch.full_like(d, float("inf"))
    for lo in range(0, len(rows), pairs_per_step):  # bounded workspace
        r, c = rows[lo:lo + pairs_per_step], cols[lo:lo + pairs_per_step]
        exact[r, c] = (q[r] - u[c]).pow(2).sum(-1)
    exact = exact[:, inv]  # (L, n)
    # Order: finite, then +inf, then NaN, then candidates outside the window; within each,
    # by distance, then (torch.topk does not say which of equal values it returns, a stable
    # sort keeps them in key-index order) by the smaller index.
    rank = torch.where(exact.isnan(), 2, torch.where(exact.isinf(), 1, 0)).masked_fill_(~inside, 3)
    by_value = exact.masked_fill(exact.isnan(), float("inf")).sort(dim=-1, stable=True).indices
    by_rank = rank.gather(-1, by_value).sort(dim=-1, stable=True).indices
    return by_value.gather(-1, by_rank)[:, :k]


def cross_scale_knn(query: torch.Tensor, key: torch.Tensor, k: int = 5, patch_size: int = 3, stride: int = 2,
                    window: int | None = 30, scale: int = 2, chunk_size: int = 1024,
                    window_start: tuple[int, int] | None = None):
    """k nearest key patches of every query patch, searched in a window.

    query (B, C, H, W) -> grid m1 x m2 (m patches); key (B, C, Hk, Wk) -> grid n1 x n2.
    Query row i's window starts at key row clamp(i // d - o, 0, n1 - w1) (columns
    likewise), (d, o) = window_start, default (scale, window // 2).
    Returns dist (B, m, k) float32 (float64 for float64 input), ascending, and idx (B, m, k)
    int64 key-patch numbers a*n2 + b; ties go to the smaller index. `dist` is differentiable
    in query and key. `chunk_size` queries are compared at a time: workspace O(chunk_size * n).
    """
    _check(query, key, k, patch_size, stride, window, scale, chunk_size)
    divisor, offset = (scale, None) if window_start is None else _window_rule(window_start)
    p, t = patch_size, stride
    m2 = grid(query.shape[-1], p, t)
    n1, n2 = grid(key.shape[-2], p, t), grid(key.shape[-1], p, t)
    dtype = torch.promote_types(query.dtype, torch.float32)
    q = F.unfold(query.to(dtype), p, stride=t).transpose(1, 2)  # (B, m, C*p*p)
    c = F.unfold(key.to(dtype), p, stride=t).transpose(1, 2)  # (B, n, C*p*p)
    B, m = q.shape[:2]

    idx = torch.empty(B, m, k, dtype=torch.int64, device=query.device)
    with torch.no_grad():
        for b in range(B):
            # Identical key patches are measured once, so their distances tie exactly.
            u, inv = torch.unique(c[b], dim=0, return_inverse=True)  # (U, D), (n,)
            for s in range(0, m, chunk_size):
                e = min(s + chunk_size, m)
                inside = torch.ones(e - s, n1 * n2, dtype=torch.bool, device=q.device)
                if window is not None:
                    inside = window_mask(torch.arange(s, e, device=q.device), m2, n1, n2, divisor, window, offset)
                idx[b, s:e] = _nearest(q[b, s:e], u, inv, inside, k, pairs_per_step=16 * chunk_size)

    # The chosen distances, recomputed exactly from the patches with autograd on: no
    # cancellation, and the gradient is 2(q - c) w.r.t. q (and its negative w.r.t. c).
    batch = torch.arange(B, device=query.device)[:, None, None]
    dist = (q.unsqueeze(2) - c[batch, idx]).pow(2).sum(-1)  # (B, m, k)
    # Re-sort the k by these exact values (index order first, then a stable sort on the
    # distance) so that dist is ascending and equal distances keep the smaller index first.
    idx, order = idx.sort(dim=-1)
    dist = dist.gather(-1, order)
    order = dist.detach().sort(dim=-1, stable=True).indices
    return dist.gather(-1, order), idx.gather(-1, order)
