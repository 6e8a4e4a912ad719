"""Triton kernels for cross_scale_knn.

Forward: one program per tile of TI x TJ query patches. The union of the tile's
windows is walked as a flat list of candidates, BN at a time; each chunk's dot products
come from tl.dot over the patch vector (C*p*p) in BD-long slices, gathered straight from
the maps (nothing is unfolded). A running set of the KP >= k + 3 best candidates per query
(by the expansion) lives in registers, unordered (the worst slot is replaced).

The expansion ||q||^2 + ||c||^2 - 2 q.c only shortlists: it is off by at most TOL *
(||q||^2 + ||c||^2). Each query tracks the smallest lower bound (expansion - error) of every
candidate left out of its set; while that stays above the k-th smallest upper bound inside
the set, the k nearest (ties included) are in the set, and measuring its KP members exactly
as sum((q - c)^2) picks them. Otherwise (more than KP - k near-ties, as in flat regions) or
when some expansion is not finite (a patch holding inf or NaN), the tile is searched again
by exact distance. NaN distances rank after +inf ones: they carry _NAN_RANK added to their
index while they compete. The host sorts the k by (dist, idx).

The backward is in cross_scale_knn_backward.py.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops.triton._util import acc_dtype

# A constexpr global: the real compiler (unlike the interpreter) refuses plain globals in a kernel.
_BIG = tl.constexpr(2**62)
_NAN_RANK = tl.constexpr(2**61)  # added to a NaN candidate's index: after every +inf one


@triton.jit
def _gather(map_ptr, C, H, W, y, x, e, P: tl.constexpr):
    """map[c, y + dy, x + dx] for patch-vector element e = (c, dy, dx); y, x, e broadcast."""
    c = e // (P * P)
    dy = (e // P) % P
    dx = e % P
    return map_ptr + (c * H + y + dy) * W + x + dx


@triton.jit
def _take_k(d, cand, best_d, best_i, slot, K: tl.constexpr):
    """Merges the K best (d, cand) of each row into the set (best_d, best_i)."""
    for _ in tl.static_range(K):
        # The chunk's best remaining candidate per query (ties: smaller index) ...
        v = tl.min(d, axis=1)
        vi = tl.min(tl.where(d == v[:, None], cand, _BIG), axis=1)
        # ... replaces the set's worst slot (ties: larger index is worse) if it beats it.
        w = tl.max(best_d, axis=1)
        wi = tl.max(tl.where(best_d == w[:, None], best_i, -1), axis=1)
        better = (v < w) | ((v == w) & (vi < wi))
        # Unfilled slots all read (inf, BIG): pick one of them by slot number.
        ws = tl.max(tl.where((best_d == w[:, None]) & (best_i == wi[:, None]), slot[None, :], -1), axis=1)
        hit = (slot[None, :] == ws[:, None]) & better[:, None]
        best_d = tl.where(hit, v[:, None], best_d)
        best_i = tl.where(hit, vi[:, None], best_i)
        taken = cand == vi[:, None]
        d = tl.where(taken, float("inf"), d)
        cand = tl.where(taken, _BIG, cand)
    return best_d, best_i


@triton.jit
def _chunk(t0, nrow, ncol, a_lo, c_lo, a0, b0, w1, w2, q_live, BN: tl.constexpr):
    """Candidates t0 .. t0 + BN of the tile's union (row-major over its nrow x ncol key
    patches): their key rows and columns, which exist, and which lie in each query's window."""
    t = t0 + tl.arange(0, BN)
    t_live = t < nrow * ncol
    ca = a_lo + t // ncol
    cb = c_lo + t % ncol
    inside = (ca[None, :] >= a0[:, None]) & (ca[None, :] < a0[:, None] + w1) \
        & (cb[None, :] >= b0[:, None]) & (cb[None, :] < b0[:, None] + w2) & t_live[None, :] & q_live[:, None]
    return t_live, ca, cb, inside


@triton.jit
def _knn_fwd_kernel(q_ptr, k_ptr, dist_ptr, idx_ptr, C, H, W, Hk, Wk, m1, m2, n1, n2, w1, w2, half,
                    tiles1, tiles2, TOL, TINY, K: tl.constexpr, KP: tl.constexpr, P: tl.constexpr,
                    T: tl.constexpr, S: tl.constexpr, TI: tl.constexpr, TJ: tl.constexpr, BN: tl.constexpr,
                    BD: tl.constexpr, ACC: tl.constexpr, PRECISION: tl.constexpr):
    pid = tl.program_id(0)
    b = pid // (tiles1 * tiles2)
    i0 = ((pid // tiles2) % tiles1) * TI
    j0 = (pid % tiles2) * TJ
    D = C * P * P
    qmap = q_ptr + b.to(tl.int64) * C * H * W
    kmap = k_ptr + b.to(tl.int64) * C * Hk * Wk

    r = tl.arange(0, TI * TJ)
    i = i0 + r // TJ
    j = j0 + r % TJ
    q_live = (i < m1) & (j < m2)
    i = tl.minimum(i, m1 - 1)
    j = tl.minimum(j, m2 - 1)
    a0 = tl.maximum(0, tl.minimum(i // S - half, n1 - w1))
    b0 = tl.maximum(0, tl.minimum(j // S - half, n2 - w2))
    i_last = tl.minimum(i0 + TI - 1, m1 - 1)
    j_last = tl.minimum(j0 + TJ - 1, m2 - 1)
    a_lo = tl.maximum(0, tl.minimum(i0 // S - half, n1 - w1))
    c_lo = tl.maximum(0, tl.minimum(j0 // S - half, n2 - w2))
    nrow = tl.maximum(0, tl.minimum(i_last // S - half, n1 - w1)) + w1 - a_lo
    ncol = tl.maximum(0, tl.minimum(j_last // S - half, n2 - w2)) + w2 - c_lo

    slot = tl.arange(0, KP)
    best_d = tl.full([TI * TJ, KP], float("inf"), ACC)
    best_i = tl.full([TI * TJ, KP], _BIG, tl.int64)
    best_lo = tl.full([TI * TJ, KP], float("inf"), ACC)
    best_hi = tl.full([TI * TJ, KP], float("inf"), ACC)
    out_lo = tl.full([TI * TJ], float("inf"), ACC)  # smallest lower bound left out of the set
    unsure = q_live & False  # some expansion was not finite
    for t0 in range(0, nrow * ncol, BN):
        t_live, ca, cb, inside = _chunk(t0, nrow, ncol, a_lo, c_lo, a0, b0, w1, w2, q_live, BN)
        dot = tl.zeros([TI * TJ, BN], ACC)
        qn = tl.zeros([TI * TJ], ACC)
        cn = tl.zeros([BN], ACC)
        for e0 in range(0, D, BD):
            e = e0 + tl.arange(0, BD)
            e_live = e < D
            qv = tl.load(_gather(qmap, C, H, W, (T * i)[:, None], (T * j)[:, None], e[None, :], P),
                         mask=q_live[:, None] & e_live[None, :], other=0.0)
            kv = tl.load(_gather(kmap, C, Hk, Wk, (T * ca)[None, :], (T * cb)[None, :], e[:, None], P),
                         mask=t_live[None, :] & e_live[:, None], other=0.0)
            dot += tl.dot(qv, kv, input_precision=PRECISION, out_dtype=ACC)
            qn += tl.sum(qv.to(ACC) * qv.to(ACC), axis=1)
            cn += tl.sum(kv.to(ACC) * kv.to(ACC), axis=0)
        raw = qn[:, None] + cn[None, :] - 2 * dot
        err = TOL * (qn[:, None] + cn[None, :]) + TINY
        ok = inside & (raw + err < float("inf"))  # False for NaN and inf
        unsure = unsure | (tl.max((inside & ~ok).to(tl.int32), axis=1) > 0)
        d = tl.where(ok, tl.maximum(raw, 0.0), float("inf"))
        lo = tl.where(ok, raw - err, float("inf"))
        hi = raw + err
        cand = tl.where(ok, (ca * n2 + cb).to(tl.int64)[None, :], _BIG)
        for _ in tl.static_range(KP):
            v = tl.min(d, axis=1)
            vi = tl.min(tl.where(d == v[:, None], cand, _BIG), axis=1)
            sel = (cand == vi[:, None]) & (vi < _BIG)[:, None]
            v_lo = tl.min(tl.where(sel, lo, float("inf")), axis=1)
            v_hi = tl.min(tl.where(sel, hi, float("inf")), axis=1)
            w = tl.max(best_d, axis=1)
            wi = tl.max(tl.where(best_d == w[:, None], best_i, -1), axis=1)
            better = (v < w) | ((v == w) & (vi < wi))
            ws = tl.max(tl.where((best_d == w[:, None]) & (best_i == wi[:, None]), slot[None, :], -1), axis=1)
            at = slot[None, :] == ws[:, None]
            evicted = tl.min(tl.where(at, best_lo, float("inf")), axis=1)
            out_lo = tl.minimum(out_lo, tl.where(better, evicted, v_lo))
            hit = at & better[:, None]
            best_d = tl.where(hit, v[:, None], best_d)
            best_i = tl.where(hit, vi[:, None], best_i)
            best_lo = tl.where(hit, v_lo[:, None], best_lo)
            best_hi = tl.where(hit, v_hi[:, None], best_hi)
            d = tl.where(sel, float("inf"), d)
            cand = tl.where(sel, _BIG, cand)
            lo = tl.where(sel, float("inf"), lo)
        out_lo = tl.minimum(out_lo, tl.min(lo, axis=1))

    # The k-th smallest upper bound in the set bounds the k-th nearest distance.
    h = best_hi
    for _ in tl.static_range(K):
        u = tl.min(h, axis=1)
        first = tl.min(tl.where(h == u[:, None], slot[None, :], KP), axis=1)
        h = tl.where(slot[None, :] == first[:, None], float("inf"), h)
    doubt = q_live & (unsure | (out_lo <= u))
    pad = slot[None, :] >= K  # in the final set: slots never replaced
    if tl.max(doubt.to(tl.int32)) > 0:
        # A candidate left out may tie with or beat the set: search the tile by exact distance.
        best_d = tl.where(pad, -float("inf"), tl.full([TI * TJ, KP], float("inf"), ACC))
        best_i = tl.full([TI * TJ, KP], _BIG, tl.int64)
        for t0 in range(0, nrow * ncol, BN):
            t_live, ca, cb, inside = _chunk(t0, nrow, ncol, a_lo, c_lo, a0, b0, w1, w2, q_live, BN)
            ex = tl.zeros([TI * TJ, BN], ACC)
            for e in range(0, D):
                qv = tl.load(_gather(qmap, C, H, W, T * i, T * j, e, P), mask=q_live, other=0.0).to(ACC)
                kv = tl.load(_gather(kmap, C, Hk, Wk, T * ca, T * cb, e, P), mask=t_live, other=0.0).to(ACC)
                ex += (qv[:, None] - kv[None, :]) * (qv[:, None] - kv[None, :])
            is_nan = ex != ex
            cand = (ca * n2 + cb).to(tl.int64)[None, :] + tl.where(is_nan, _NAN_RANK, 0).to(tl.int64)
            cand = tl.where(inside, cand, _BIG)
            best_d, best_i = _take_k(tl.where(inside & ~is_nan, ex, float("inf")), cand, best_d, best_i, slot, K)

    # Exact distances of the set's members; the k best of them (ties: smaller index).
    exact = tl.zeros([TI * TJ, KP], ACC)
    for s in tl.static_range(KP):
        n = tl.sum(tl.where(slot[None, :] == s, best_i, 0), axis=1)
        real = n < _BIG
        n = tl.where(n >= _NAN_RANK, n - _NAN_RANK, n)
        na, nb = n // n2, n % n2
        acc = tl.zeros([TI * TJ], ACC)
        for e0 in range(0, D, BD):
            e = e0 + tl.arange(0, BD)
            live = (q_live & real)[:, None] & (e < D)[None, :]
            qv = tl.load(_gather(qmap, C, H, W, (T * i)[:, None], (T * j)[:, None], e[None, :], P),
                         mask=live, other=0.0).to(ACC)
            kv = tl.load(_gather(kmap, C, Hk, Wk, (T * na)[:, None], (T * nb)[:, None], e[None, :], P),
                         mask=live, other=0.0).to(ACC)
            acc += tl.sum((qv - kv) * (qv - kv), axis=1)
        exact = tl.where(slot[None, :] == s, acc[:, None], exact)
    members = tl.where(best_i >= _NAN_RANK, best_i - _NAN_RANK, best_i)
    is_nan = exact != exact
    cand = tl.where(best_i < _BIG, members + tl.where(is_nan, _NAN_RANK, 0).to(tl.int64), _BIG)
    final_d = tl.where(pad, -float("inf"), tl.full([TI * TJ, KP], float("inf"), ACC))
    final_i = tl.full([TI * TJ, KP], _BIG, tl.int64)
    final_d, final_i = _take_k(tl.where(is_nan | (best_i >= _BIG), float("inf"), exact), cand, final_d, final_i,
                               slot, K)
    best_i = tl.where(final_i >= _NAN_RANK, final_i - _NAN_RANK, final_i)
    # The chosen members' exact distances, in their slots (NaN ones included).
    chosen = tl.zeros([TI * TJ, KP], ACC)
    for s in tl.static_range(KP):
        hit = members == tl.sum(tl.where(slot[None, :] == s, best_i, 0), axis=1)[:, None]
        pick = tl.max(tl.where(hit, slot[None, :], -1), axis=1)
        val = tl.sum(tl.where(slot[None, :] == pick[:, None], exact, 0.0), axis=1)
        chosen = tl.where(slot[None, :] == s, val[:, None], chosen)
    exact = chosen
    q = (b * m1 * m2 + i * m2 + j).to(tl.int64)
    out = q[:, None] * K + slot[None, :]
    keep = q_live[:, None] & (slot[None, :] < K)
    tl.store(dist_ptr + out, exact, mask=keep)
    tl.store(idx_ptr + out, best_i, mask=keep)


def _dims(query, key, P, T, window, offset=-1):
    _, _, H, W = query.shape
    Hk, Wk = key.shape[-2:]
    m1, m2 = (H - P) // T + 1, (W - P) // T + 1
    n1, n2 = (Hk - P) // T + 1, (Wk - P) // T + 1
    if window <= 0:
        return m1, m2, n1, n2, n1, n2, 0
    return m1, m2, n1, n2, min(window, n1), min(window, n2), window // 2 if offset < 0 else offset


def cross_scale_knn_fwd(query, key, k, patch_size, stride, window, scale, window_offset=-1):
    query, key = query.contiguous(), key.contiguous()
    B, C, H, W = query.shape
    m1, m2, n1, n2, w1, w2, half = _dims(query, key, patch_size, stride, window, window_offset)
    out_dtype = torch.float64 if query.dtype == torch.float64 else torch.float32
    dist = torch.empty(B, m1 * m2, k, device=query.device, dtype=out_dtype)
    idx = torch.empty(B, m1 * m2, k, device=query.device, dtype=torch.int64)
    TI, TJ = 4, 8
    tiles1, tiles2 = triton.cdiv(m1, TI), triton.cdiv(m2, TJ)
    # fp32 ranking needs full-precision products (TF32 would reorder near neighbours);
    # half inputs use the tensor cores natively.
    precision = "ieee" if query.dtype in (torch.float32, torch.float64) else None
    # Bound on |expansion - exact| / (||q||^2 + ||c||^2) in the accumulation type (the CPU
    # kernel's): D-term rounding in the norms, the dot and the direct sum.
    D = C * patch_size * patch_size
    finfo = torch.finfo(out_dtype)
    tol, tiny = (4 * D + 16) * finfo.eps, 4 * D * finfo.tiny
    _knn_fwd_kernel[(B * tiles1 * tiles2,)](
        query, key, dist, idx, C, H, W, key.shape[2], key.shape[3], m1, m2, n1, n2, w1, w2, half,
        tiles1, tiles2, tol, tiny, K=k, KP=triton.next_power_of_2(k + 3), P=patch_size, T=stride, S=scale, TI=TI, TJ=TJ,
        BN=32, BD=32, ACC=acc_dtype(query.dtype), PRECISION=precision,
        # 8 warps: at 4 the [32, 32] tiles need over 255 registers a thread and spill on sm_90
        # (fp32/fp64; docs/gpu-kernels.md). The interpreter ignores num_warps.
        num_warps=8,
    )
    # The kernel's k slots are unordered: sort by (dist, idx), ties to the smaller index.
    idx, order = idx.sort(dim=-1)
    dist = dist.gather(-1, order)
    dist, order = dist.sort(dim=-1, stable=True)
    return dist, idx.gather(-1, order)
