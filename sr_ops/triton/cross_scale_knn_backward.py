"""Triton backward of cross_scale_knn, deterministic: no atomics, every sum in a fixed order.

d dist[q, r] / d query = 2 g (Q_q - K_idx) over the patch pixels, minus that for key.
grad_query, output-stationary: one lane per query pixel sums the <= ceil(p/t)^2 query
patches covering it and each one's k neighbours. grad_key, output-stationary through an
inverse index (sr_ops/triton/_inverse_index.py): one lane per key pixel sums the
<= ceil(p/t)^2 key patches covering it and, for each, the entries that chose it in (q, r)
order; the wrapper gathers each entry's gradient and query patch offset into that order
(memory: two (B * m * k) arrays and B * n + 1 offsets). Programs: (pixel blocks, B * C
planes); offsets in int32 unless a tensor reaches 2**31 elements.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops._validate import grid
from sr_ops.triton._inverse_index import index_dtype, inverse_index
from sr_ops.triton._round import to_out
from sr_ops.triton._util import acc_dtype

_BLOCK = 128
_MAX_PLANES = 65535


@triton.jit
def _grad_query_kernel(g_ptr, kbase_ptr, q_ptr, k_ptr, out_ptr, C, H, W, Hk, Wk, m1, m2, K: tl.constexpr,
                       P: tl.constexpr, T: tl.constexpr, NCOVER: tl.constexpr, ACC: tl.constexpr,
                       BLOCK: tl.constexpr, WIDE: tl.constexpr, plane0=0):
    plane = plane0 + tl.program_id(1)
    pix = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    if WIDE:
        plane = plane.to(tl.int64)
        pix = pix.to(tl.int64)
    live = pix < H * W
    y = pix // W
    x = pix - y * W
    b = plane // C
    qv = tl.load(q_ptr + plane * (H * W) + pix, mask=live, other=0.0).to(ACC)
    kplane = k_ptr + plane * (Hk * Wk)
    acc = tl.zeros([BLOCK], ACC)
    for di in tl.static_range(NCOVER):
        i = y // T - (NCOVER - 1 - di)  # ascending patch rows
        ok_i = (i >= 0) & (i < m1) & (y - T * i < P)
        for dj in tl.static_range(NCOVER):
            j = x // T - (NCOVER - 1 - dj)
            ok = live & ok_i & (j >= 0) & (j < m2) & (x - T * j < P)
            row = ((b * m1 + i) * m2 + j) * K
            koff = (y - T * i) * Wk + (x - T * j)
            for r in tl.static_range(K):
                g = tl.load(g_ptr + row + r, mask=ok, other=0.0)
                kb = tl.load(kbase_ptr + row + r, mask=ok, other=0)
                kv = tl.load(kplane + kb + koff, mask=ok, other=0.0).to(ACC)
                acc += tl.where(ok, g * (qv - kv), 0.0)  # 0 * inf must not reach a lane it does not cover
    tl.store(out_ptr + plane * (H * W) + pix, to_out(2 * acc, out_ptr), mask=live)


@triton.jit
def _grad_key_kernel(start_ptr, sg_ptr, sq_ptr, q_ptr, k_ptr, out_ptr, C, H, W, Hk, Wk, n1, n2, P: tl.constexpr,
                     T: tl.constexpr, NCOVER: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
                     WIDE: tl.constexpr, plane0=0):
    plane = plane0 + tl.program_id(1)
    pix = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    if WIDE:
        plane = plane.to(tl.int64)
        pix = pix.to(tl.int64)
    live = pix < Hk * Wk
    y = pix // Wk
    x = pix - y * Wk
    b = plane // C
    kv = tl.load(k_ptr + plane * (Hk * Wk) + pix, mask=live, other=0.0).to(ACC)
    qplane = q_ptr + plane * (H * W)
    acc = tl.zeros([BLOCK], ACC)
    for di in tl.static_range(NCOVER):
        a = y // T - (NCOVER - 1 - di)
        ok_a = (a >= 0) & (a < n1) & (y - T * a < P)
        for dj in tl.static_range(NCOVER):
            c = x // T - (NCOVER - 1 - dj)
            ok = live & ok_a & (c >= 0) & (c < n2) & (x - T * c < P)
            key = (b * n1 + a) * n2 + c
            s0 = tl.load(start_ptr + key, mask=ok, other=0)
            count = tl.load(start_ptr + key + 1, mask=ok, other=0) - s0
            qoff = (y - T * a) * W + (x - T * c)
            for s in range(0, tl.max(count, axis=0)):
                on = s < count
                g = tl.load(sg_ptr + s0 + s, mask=on, other=0.0)
                qb = tl.load(sq_ptr + s0 + s, mask=on, other=0)
                qv = tl.load(qplane + qb + qoff, mask=on, other=0.0).to(ACC)
                acc += tl.where(on, g * (qv - kv), 0.0)
    tl.store(out_ptr + plane * (Hk * Wk) + pix, to_out(-2 * acc, out_ptr), mask=live)


def cross_scale_knn_bwd(grad_dist, idx, query, key, patch_size, stride):
    query, key, idx = query.contiguous(), key.contiguous(), idx.contiguous()
    B, C, H, W = query.shape
    Hk, Wk = key.shape[-2:]
    P, T = patch_size, stride
    m1, m2, n1, n2 = grid(H, P, T), grid(W, P, T), grid(Hk, P, T), grid(Wk, P, T)
    gq, gk = torch.empty_like(query), torch.empty_like(key)
    if query.numel() == 0:
        return gq, gk
    m, k = m1 * m2, idx.shape[-1]
    it = index_dtype(query.numel(), key.numel(), idx.numel() + 1, B * n1 * n2 + 1)
    acc = torch.float64 if query.dtype == torch.float64 else torch.float32
    grad = grad_dist.to(acc).contiguous()
    kbase = ((idx // n2) * (T * Wk) + (idx % n2) * T).to(it)
    q = torch.arange(m, device=idx.device)
    qbase = ((q // m2) * (T * W) + (q % m2) * T).view(1, m, 1).expand(B, m, k).reshape(-1)
    start, order = inverse_index(idx, n1 * n2, it)
    sorted_grad, sorted_qbase = grad.reshape(-1)[order], qbase[order].to(it)
    meta = dict(P=P, T=T, NCOVER=-(-P // T), ACC=acc_dtype(query.dtype), BLOCK=_BLOCK, WIDE=it == torch.int64)
    for p0 in range(0, B * C, _MAX_PLANES):  # planes on the second grid axis, at most 65535 a launch
        planes = min(_MAX_PLANES, B * C - p0)
        _grad_query_kernel[(triton.cdiv(H * W, _BLOCK), planes)](
            grad, kbase, query, key, gq, C, H, W, Hk, Wk, m1, m2, K=k, plane0=p0, **meta)
        _grad_key_kernel[(triton.cdiv(Hk * Wk, _BLOCK), planes)](
            start, sorted_grad, sorted_qbase, query, key, gk, C, H, W, Hk, Wk, n1, n2, plane0=p0, **meta)
    return gq, gk
