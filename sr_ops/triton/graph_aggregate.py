"""Triton kernels for graph_aggregate (same two-pass plan as the CPU/CUDA kernels).

Forward: (1) one lane per (b, q, r, c) computes AdaPN's (alpha, beta, shift); (2) one lane per
output element gathers the <= ceil(p/t)^2 covering query patches' neighbour values.
Backward, deterministic (no atomics, every sum in a fixed order): (1) one lane per (b, c, q)
computes the AdaPN gradient coefficients of its k neighbours in r order and sums their query
terms in that order; (2) grad_feat output-stationary through an inverse index
(sr_ops/triton/_inverse_index.py; memory: a (B * m * k, 4) int32 table of the sorted entries
and B * n + 1 offsets): one lane per feat pixel sums the <= ceil(p/t)^2 key regions covering
it and each one's entries in (q, r) order; (3) grad_query_feat and (4) grad_weights
output-stationary. (1) and (2) run on (pixel or patch blocks, B * C planes) with int32
offsets unless a tensor reaches 2**31 elements.

A neighbour region may overhang feat's bottom/right border: masked loads read the
overhang as 0 and it takes no gradient (csrc/kernels/graph_aggregate.h).

As there, statistics and values are taken about each window's first value (shift): a
normalised value is (z - shift) * alpha + beta, which keeps float32's digits when the
mean is far from 0 (z * alpha + (mean_q - mean_z * alpha) cancels |mean_z| * alpha * ulp).
Tables: forward (alpha, beta, shift); backward (alpha, beta, c1, c2, shift) and the query
terms (mean coef, var coef, shift_q, dmean_q).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops._validate import grid
from sr_ops.triton._inverse_index import index_dtype, inverse_index
from sr_ops.triton._round import to_out
from sr_ops.triton._util import acc_dtype, launch_grid

_BLOCK = 128
_MAX_PLANES = 65535


@triton.jit
def _window_stats(plane, H, W, y, x, n: tl.constexpr, live, ACC: tl.constexpr):
    """(shift, dmean, var) of the n x n window at (y, x), 0 past the H x W plane: its first
    value (inside the plane), mean - shift and the unbiased variance."""
    x0 = tl.load(plane + y * W + x, mask=live, other=0.0).to(ACC)
    s = tl.zeros(y.shape, ACC)
    for u in tl.static_range(n):
        for v in tl.static_range(n):
            ok = live & (y + u < H) & (x + v < W)
            s += tl.load(plane + (y + u) * W + x + v, mask=ok, other=0.0).to(ACC) - x0
    dm = s / (n * n)
    ss = tl.zeros(y.shape, ACC)
    for u in tl.static_range(n):
        for v in tl.static_range(n):
            ok = live & (y + u < H) & (x + v < W)
            dv = (tl.load(plane + (y + u) * W + x + v, mask=ok, other=0.0).to(ACC) - x0) - dm
            ss += dv * dv
    return x0, dm, ss / (n * n - 1)


@triton.jit
def _count(Y, P: tl.constexpr, T: tl.constexpr, m):
    """How many grid windows (size P, stride T, m of them) contain coordinate Y."""
    hi = tl.minimum(m - 1, Y // T)
    lo = tl.where(Y < P, 0, (Y - P) // T + 1)
    return tl.maximum(hi - lo + 1, 0)


@triton.jit
def _affine_kernel(feat, qf, idx, ab, N, C, H, W, m, m2, n2, K, eps, p: tl.constexpr, t: tl.constexpr,
                   S: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    e = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # flat (b, q, r, c)
    live = e < N
    c = e % C
    bqr = e // C
    b = bqr // (m * K)
    q = (bqr // K) % m
    n = tl.load(idx + bqr, mask=live, other=0)
    plane = (b * C + c) * H * W
    sz, dz, vz = _window_stats(feat + plane, H, W, S * t * (n // n2), S * t * (n % n2), S * p, live, ACC)
    sq, dq, vq = _window_stats(qf + plane, H, W, t * (q // m2), t * (q % m2), p, live, ACC)
    alpha = tl.sqrt(vq + eps) / tl.sqrt(vz + eps)
    tl.store(ab + 3 * e, alpha, mask=live)
    tl.store(ab + 3 * e + 1, (sq + dq) - dz * alpha, mask=live)
    tl.store(ab + 3 * e + 2, sz, mask=live)


@triton.jit
def _neighbour_value(feat, ab, idx, b, q, r, c, C, H, W, n2, K, u, v, T: tl.constexpr, ok, ACC: tl.constexpr,
                     STRIDE: tl.constexpr = 3, SHIFT: tl.constexpr = 2):
    """AdaPN-normalised value of neighbour r of query q at offset (u, v) of its region.
    `ab` holds (alpha, beta, ...) per (q, r, c), STRIDE values apart, the shift at SHIFT
    (forward 3 and 2, backward 5 and 4)."""
    n = tl.load(idx + q * K + r, mask=ok, other=0)
    y, x = T * (n // n2) + u, T * (n % n2) + v
    z = tl.load(feat + ((b * C + c) * H + y) * W + x, mask=ok & (y < H) & (x < W), other=0.0).to(ACC)
    base = ((q * K + r) * C + c) * STRIDE
    shift = tl.load(ab + base + SHIFT, mask=ok, other=0.0)
    return (z - shift) * tl.load(ab + base, mask=ok, other=1.0) + tl.load(ab + base + 1, mask=ok, other=0.0)


@triton.jit
def _fold_kernel(feat, idx, ab, weights, out, N, C, H, W, HH, WW, m1, m2, n2, K, WEIGHTED: tl.constexpr,
                 P: tl.constexpr, T: tl.constexpr, NCOVER: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    # One lane per output element: (b, c, Y, X) with weights, else (b, r, c, Y, X).
    e = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = e < N
    X = e % WW
    Y = (e // WW) % HH
    c = (e // (WW * HH)) % C
    rest = e // (WW * HH * C)
    b = rest if WEIGHTED else rest // K
    acc = tl.zeros([BLOCK], ACC)
    for di in tl.static_range(NCOVER):
        i = Y // T - di
        ok_i = (i >= 0) & (i < m1) & (Y - T * i < P)
        for dj in tl.static_range(NCOVER):
            j = X // T - dj
            ok = live & ok_i & (j >= 0) & (j < m2) & (X - T * j < P)
            q = b * (m1 * m2) + i * m2 + j
            if WEIGHTED:
                for r in range(K):
                    w = tl.load(weights + ((b * K + r) * HH + Y) * WW + X, mask=ok, other=0.0).to(ACC)
                    acc += w * _neighbour_value(feat, ab, idx, b, q, r, c, C, H, W, n2, K, Y - T * i, X - T * j,
                                                T, ok, ACC)
            else:
                acc += _neighbour_value(feat, ab, idx, b, q, rest % K, c, C, H, W, n2, K, Y - T * i, X - T * j,
                                        T, ok, ACC)
    cnt = (_count(Y, P, T, m1) * _count(X, P, T, m2)).to(ACC)
    tl.store(out + e, tl.where(cnt > 0, acc / tl.maximum(cnt, 1.0), 0.0).to(out.dtype.element_ty), mask=live)


@triton.jit
def _cover(u, i, m, P: tl.constexpr, T: tl.constexpr):
    """How many HR patches (P every T, m of them) hold T * i + u, u in [0, P)."""
    return tl.minimum(m - 1, i + u // T) - tl.maximum(0, i + 1 - (P - u + T - 1) // T) + 1


@triton.jit
def _coef_kernel(grad, weights, feat, qf, idx, gc, qc, C, H, W, HH, WW, m1, m2, n2, K, eps,
                 WEIGHTED: tl.constexpr, p: tl.constexpr, t: tl.constexpr, P: tl.constexpr, T: tl.constexpr,
                 ACC: tl.constexpr, BLOCK: tl.constexpr, WIDE: tl.constexpr, plane0=0):
    plane = plane0 + tl.program_id(1)  # b * C + c
    q = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    if WIDE:
        plane = plane.to(tl.int64)
        q = q.to(tl.int64)
    m = m1 * m2
    live = q < m
    b = plane // C
    c = plane - b * C
    i = q // m2
    j = q - i * m2
    fplane = feat + plane * (H * W)
    shift_q, dq, vq = _window_stats(qf + plane * (H * W), H, W, t * i, t * j, p, live, ACC)
    sq = tl.sqrt(vq + eps)
    qm = tl.zeros([BLOCK], ACC)
    qv = tl.zeros([BLOCK], ACC)
    for r in range(K):
        e = (b * m + q) * K + r
        n = tl.load(idx + e, mask=live, other=0).to(q.dtype)
        ry = T * (n // n2)
        rx = T * (n - (n // n2) * n2)
        shift, dz, vz = _window_stats(fplane, H, W, ry, rx, P, live, ACC)
        sz = tl.sqrt(vz + eps)
        alpha = sq / sz
        da = tl.zeros([BLOCK], ACC)
        db = tl.zeros([BLOCK], ACC)
        for u in tl.static_range(P):
            for v in tl.static_range(P):
                Y = T * i + u
                X = T * j + v
                if WEIGHTED:
                    g = tl.load(grad + (plane * HH + Y) * WW + X, mask=live, other=0.0).to(ACC)
                    g *= tl.load(weights + ((b * K + r) * HH + Y) * WW + X, mask=live, other=0.0).to(ACC)
                else:
                    g = tl.load(grad + (((b * K + r) * C + c) * HH + Y) * WW + X, mask=live, other=0.0).to(ACC)
                g = g / tl.maximum(_cover(u, i, m1, P, T) * _cover(v, j, m2, P, T), 1).to(ACC)  # 1: dead lanes
                inside = live & (ry + u < H) & (rx + v < W)  # the overhang reads 0
                da += g * (tl.load(fplane + (ry + u) * W + rx + v, mask=inside, other=0.0).to(ACC) - shift)
                db += g
        # Chain rule through alpha = sq / sz, beta = mean_q - dz * alpha, all about the
        # shift (see kernels/graph_aggregate.h): dat = sum(g * (z - mean_z)).
        dat = da - dz * db
        d_var_z = -dat * sq / (sz * sz) / (2 * sz)
        c2 = 2 * d_var_z / (P * P - 1)
        c1 = -alpha * db / (P * P) - c2 * dz
        qm += db / (p * p)
        qv += 2 * (dat / sz / (2 * sq)) / (p * p - 1)
        row = gc + (e * C + c) * 5
        tl.store(row, alpha, mask=live)
        tl.store(row + 1, (shift_q + dq) - dz * alpha, mask=live)
        tl.store(row + 2, c1, mask=live)
        tl.store(row + 3, c2, mask=live)
        tl.store(row + 4, shift, mask=live)
    qrow = qc + ((b * m + q) * C + c) * 4
    tl.store(qrow, qm, mask=live)
    tl.store(qrow + 1, qv, mask=live)
    tl.store(qrow + 2, shift_q, mask=live)
    tl.store(qrow + 3, dq, mask=live)


@triton.jit
def _feat_grad_kernel(grad, weights, feat, gc, start, entries, gfeat, C, H, W, HH, WW, m1, m2, n1, n2, K,
                      WEIGHTED: tl.constexpr, P: tl.constexpr, T: tl.constexpr, NCOVER: tl.constexpr,
                      ACC: tl.constexpr, BLOCK: tl.constexpr, WIDE: tl.constexpr, plane0=0):
    plane = plane0 + tl.program_id(1)  # b * C + c
    pix = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    if WIDE:
        plane = plane.to(tl.int64)
        pix = pix.to(tl.int64)
    live = pix < H * W
    y = pix // W
    x = pix - y * W
    b = plane // C
    c = plane - b * C
    f = tl.load(feat + plane * (H * W) + pix, mask=live, other=0.0).to(ACC)
    acc = tl.zeros([BLOCK], ACC)
    for di in tl.static_range(NCOVER):
        a = y // T - (NCOVER - 1 - di)  # ascending key rows, then columns
        ok_a = (a >= 0) & (a < n1) & (y - T * a < P)
        u = y - T * a
        for dj in tl.static_range(NCOVER):
            kc = x // T - (NCOVER - 1 - dj)
            ok = live & ok_a & (kc >= 0) & (kc < n2) & (x - T * kc < P)
            v = x - T * kc
            key = (b * n1 + a) * n2 + kc
            s0 = tl.load(start + key, mask=ok, other=0)
            count = tl.load(start + key + 1, mask=ok, other=0) - s0
            for s in range(0, tl.max(count, axis=0)):
                on = s < count
                ent = entries + (s0 + s) * 4  # (e, r, i, j)
                e = tl.load(ent, mask=on, other=0)
                r = tl.load(ent + 1, mask=on, other=0)
                i = tl.load(ent + 2, mask=on, other=0)
                j = tl.load(ent + 3, mask=on, other=0)
                Y = T * i + u
                X = T * j + v
                if WEIGHTED:
                    g = tl.load(grad + (plane * HH + Y) * WW + X, mask=on, other=0.0).to(ACC)
                    g *= tl.load(weights + ((b * K + r) * HH + Y) * WW + X, mask=on, other=0.0).to(ACC)
                else:
                    g = tl.load(grad + (((b * K + r) * C + c) * HH + Y) * WW + X, mask=on, other=0.0).to(ACC)
                g = g / tl.maximum(_cover(u, i, m1, P, T) * _cover(v, j, m2, P, T), 1).to(ACC)
                row = gc + (e * C + c) * 5
                term = g * tl.load(row, mask=on, other=0.0) + tl.load(row + 2, mask=on, other=0.0) \
                    + tl.load(row + 3, mask=on, other=0.0) * (f - tl.load(row + 4, mask=on, other=0.0))
                acc += tl.where(on, term, 0.0)
    tl.store(gfeat + plane * (H * W) + pix, to_out(acc, gfeat), mask=live)


@triton.jit
def _query_grad_kernel(qf, qc, out, N, C, H, W, m1, m2, p: tl.constexpr, t: tl.constexpr, NCOVER: tl.constexpr,
                       ACC: tl.constexpr, BLOCK: tl.constexpr):
    e = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # flat (b, c, y, x)
    live = e < N
    x = e % W
    y = (e // W) % H
    c = (e // (W * H)) % C
    b = e // (W * H * C)
    val = tl.load(qf + e, mask=live, other=0.0).to(ACC)
    s = tl.zeros([BLOCK], ACC)
    for di in tl.static_range(NCOVER):
        i = y // t - di
        ok_i = (i >= 0) & (i < m1) & (y - t * i < p)
        for dj in tl.static_range(NCOVER):
            j = x // t - dj
            ok = live & ok_i & (j >= 0) & (j < m2) & (x - t * j < p)
            base = ((b * (m1 * m2) + i * m2 + j) * C + c) * 4
            s += tl.load(qc + base, mask=ok, other=0.0) + tl.load(qc + base + 1, mask=ok, other=0.0) * (
                (val - tl.load(qc + base + 2, mask=ok, other=0.0)) - tl.load(qc + base + 3, mask=ok, other=0.0))
    tl.store(out + e, s.to(out.dtype.element_ty), mask=live)


@triton.jit
def _weight_grad_kernel(grad, feat, idx, gc, out, N, C, H, W, HH, WW, m1, m2, n2, K, P: tl.constexpr,
                        T: tl.constexpr, NCOVER: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    e = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # flat (b, r, Y, X)
    live = e < N
    X = e % WW
    Y = (e // WW) % HH
    r = (e // (WW * HH)) % K
    b = e // (WW * HH * K)
    acc = tl.zeros([BLOCK], ACC)
    for di in tl.static_range(NCOVER):
        i = Y // T - di
        ok_i = (i >= 0) & (i < m1) & (Y - T * i < P)
        for dj in tl.static_range(NCOVER):
            j = X // T - dj
            ok = live & ok_i & (j >= 0) & (j < m2) & (X - T * j < P)
            q = b * (m1 * m2) + i * m2 + j
            for c in range(C):
                g = tl.load(grad + ((b * C + c) * HH + Y) * WW + X, mask=ok, other=0.0).to(ACC)
                acc += g * _neighbour_value(feat, gc, idx, b, q, r, c, C, H, W, n2, K, Y - T * i, X - T * j, T, ok,
                                            ACC, STRIDE=5, SHIFT=4)
    cnt = (_count(Y, P, T, m1) * _count(X, P, T, m2)).to(ACC)
    tl.store(out + e, tl.where(cnt > 0, acc / tl.maximum(cnt, 1.0), 0.0).to(out.dtype.element_ty), mask=live)


def _dims(feat, idx, key_hw, scale, p, t):
    B, C, H, W = feat.shape
    m1, m2 = grid(H, p, t), grid(W, p, t)
    n2 = grid(key_hw[1], p, t)
    return B, C, H, W, idx.shape[-1], m1, m2, n2


def _launch(kernel, n, *args, **meta):
    if n:
        kernel[launch_grid(n, _BLOCK)](*args, BLOCK=_BLOCK, **meta)


def graph_aggregate_fwd(feat, idx, query_feat, key_hw, scale, patch_size, stride, weights, adapn, eps):
    B, C, H, W, K, m1, m2, n2 = _dims(feat, idx, key_hw, scale, patch_size, stride)
    P, T, HH, WW = scale * patch_size, scale * stride, scale * H, scale * W
    acc = torch.float64 if feat.dtype == torch.float64 else torch.float32
    ACC = acc_dtype(feat.dtype)
    ab = torch.empty(B, m1 * m2, K, C, 3, device=feat.device, dtype=acc)
    if adapn:
        _launch(_affine_kernel, ab.numel() // 3, feat, query_feat, idx, ab, ab.numel() // 3, C, H, W, m1 * m2,
                m2, n2, K, eps, p=patch_size, t=stride, S=scale, ACC=ACC)
    else:
        ab[..., 0], ab[..., 1:] = 1.0, 0.0
    shape = (B, C, HH, WW) if weights is not None else (B, K, C, HH, WW)
    out = torch.empty(shape, device=feat.device, dtype=feat.dtype)
    w = weights.contiguous() if weights is not None else feat
    _launch(_fold_kernel, out.numel(), feat, idx, ab, w, out, out.numel(), C, H, W, HH, WW, m1, m2, n2, K,
            WEIGHTED=weights is not None, P=P, T=T, NCOVER=-(-P // T), ACC=ACC)
    return out


def graph_aggregate_bwd(grad, feat, idx, query_feat, weights, key_hw, scale, patch_size, stride, adapn, eps):
    B, C, H, W, K, m1, m2, n2 = _dims(feat, idx, key_hw, scale, patch_size, stride)
    n1 = grid(key_hw[0], patch_size, stride)
    P, T, HH, WW = scale * patch_size, scale * stride, scale * H, scale * W
    acc = torch.float64 if feat.dtype == torch.float64 else torch.float32
    ACC = acc_dtype(feat.dtype)
    weighted = weights is not None
    w = weights.contiguous() if weighted else feat
    grad, idx = grad.contiguous(), idx.contiguous()
    m = m1 * m2
    gc = torch.empty(B, m, K, C, 5, device=feat.device, dtype=acc)
    qc = torch.empty(B, m, C, 4, device=feat.device, dtype=acc)
    gfeat = torch.empty_like(feat)
    gq = torch.zeros_like(query_feat)
    if gc.numel() == 0:
        return gfeat.zero_(), gq, (torch.zeros_like(w) if weighted else feat.new_empty(0))
    it = index_dtype(feat.numel(), grad.numel(), w.numel(), gc.numel(), idx.numel() * 4, B * n1 * n2 + 1)
    meta = dict(WEIGHTED=weighted, P=P, T=T, ACC=ACC, BLOCK=_BLOCK, WIDE=it == torch.int64)
    for p0 in range(0, B * C, _MAX_PLANES):  # planes on the second grid axis, at most 65535 a launch
        planes = min(_MAX_PLANES, B * C - p0)
        if adapn:
            _coef_kernel[(triton.cdiv(m, _BLOCK), planes)](
                grad, w, feat, query_feat, idx, gc, qc, C, H, W, HH, WW, m1, m2, n2, K, eps, p=patch_size,
                t=stride, plane0=p0, **meta)
    if not adapn:
        gc[..., 0], gc[..., 1:] = 1.0, 0.0
    start, order = inverse_index(idx, n1 * n2, it)
    q = (order // K) % m
    entries = torch.stack([order, order % K, q // m2, q % m2], 1).to(it).contiguous()
    for p0 in range(0, B * C, _MAX_PLANES):
        planes = min(_MAX_PLANES, B * C - p0)
        _feat_grad_kernel[(triton.cdiv(H * W, _BLOCK), planes)](
            grad, w, feat, gc, start, entries, gfeat, C, H, W, HH, WW, m1, m2, n1, n2, K, NCOVER=-(-P // T),
            plane0=p0, **meta)
    if adapn:
        _launch(_query_grad_kernel, gq.numel(), query_feat, qc, gq, gq.numel(), C, H, W, m1, m2, p=patch_size,
                t=stride, NCOVER=-(-patch_size // stride), ACC=ACC)
    gw = feat.new_empty(0)
    if weighted:
        gw = torch.empty_like(w)
        _launch(_weight_grad_kernel, gw.numel(), grad, feat, idx, gc, gw, gw.numel(), C, H, W, HH, WW, m1, m2,
                n2, K, P=P, T=T, NCOVER=-(-P // T), ACC=ACC)
    return gfeat, gq, gw
