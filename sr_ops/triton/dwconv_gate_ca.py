"""Triton kernels for dwconv_gate_ca, laid out as the CUDA ones (csrc/cuda/dwconv_gate_ca.cu):
a program per (b, c') group walks its plane in BLOCK-pixel tiles, computing the gated
depthwise conv tap by tap with masked loads and reducing the pooled sums in registers
into per-chunk partials (no atomics; enough chunks for two waves on an H100, added in a fixed
order); a program per batch item forms the attention scales from a [C', C'] tile; the
backward writes the conv-output gradient gu to a scratch tensor, then a program per plane
takes the transposed conv and a program per (channel, tap, chunk) the weight gradients.
The formulas are those of csrc/kernels/dwconv_gate_ca.h."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops.triton._util import acc_dtype


@triton.jit
def _conv_tile(x_ptr, w_ptr, bias, h, w, live, H, W, K: tl.constexpr, ACC: tl.constexpr):
    """The depthwise conv of one plane at the tile's pixels (x_ptr, w_ptr at the plane's
    first value and its k*k weights)."""
    acc = tl.zeros(h.shape, dtype=ACC) + bias
    for i in tl.static_range(K):
        for j in tl.static_range(K):
            hh = h + (i - K // 2)
            ww = w + (j - K // 2)
            m = live & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
            xv = tl.load(x_ptr + hh * W + ww, mask=m, other=0.0).to(ACC)
            acc += tl.load(w_ptr + i * K + j).to(ACC) * xv
    return acc


@triton.jit
def _gated_tile(x_ptr, dw_ptr, db_ptr, b, c, e, live, C, Cg, H, W,
                K: tl.constexpr, GATE: tl.constexpr, ACC: tl.constexpr):
    HW = H * W
    h = e // W
    w = e % W
    u1 = _conv_tile(x_ptr + (b * C + c) * HW, dw_ptr + c * K * K, tl.load(db_ptr + c).to(ACC),
                    h, w, live, H, W, K, ACC)
    if GATE:
        c2 = c + Cg
        u2 = _conv_tile(x_ptr + (b * C + c2) * HW, dw_ptr + c2 * K * K, tl.load(db_ptr + c2).to(ACC),
                        h, w, live, H, W, K, ACC)
    else:
        u2 = tl.full(h.shape, 1.0, ACC)
    return u1, u2


@triton.jit
def _pool_kernel(x_ptr, dw_ptr, db_ptr, g_ptr, out_ptr, s_ptr, ga_ptr, C, Cg, H, W, STEP,
                 K: tl.constexpr, GATE: tl.constexpr, BACKWARD: tl.constexpr,
                 BLOCK: tl.constexpr, ACC: tl.constexpr):
    """Program (grp, q): pixels [q * STEP, (q + 1) * STEP) of group grp, its partial sums to
    s_ptr / ga_ptr[grp, q] (added in order by the wrapper)."""
    grp = tl.program_id(0).to(tl.int64)
    q = tl.program_id(1)
    b = grp // Cg
    c = grp % Cg
    HW = H * W
    sy = tl.zeros([BLOCK], dtype=ACC)
    sgy = tl.zeros([BLOCK], dtype=ACC)
    for start in range(q * STEP, tl.minimum(q * STEP + STEP, HW), BLOCK):
        e = start + tl.arange(0, BLOCK)
        live = e < HW
        u1, u2 = _gated_tile(x_ptr, dw_ptr, db_ptr, b, c, e, live, C, Cg, H, W, K, GATE, ACC)
        y = tl.where(live, u1 * u2, 0.0)
        sy += y
        if BACKWARD:
            sgy += tl.load(g_ptr + grp * HW + e, mask=live, other=0.0).to(ACC) * y
        else:
            tl.store(out_ptr + grp * HW + e, y.to(out_ptr.dtype.element_ty), mask=live)
    at = grp * tl.num_programs(1) + q
    tl.store(s_ptr + at, tl.sum(sy, axis=0))
    if BACKWARD:
        tl.store(ga_ptr + at, tl.sum(sgy, axis=0))


@triton.jit
def _mix_kernel(cw_ptr, cb_ptr, s_ptr, ga_ptr, a_ptr, gs_ptr, Cg,
                BACKWARD: tl.constexpr, BC: tl.constexpr, ACC: tl.constexpr):
    """a[b] = cw @ s[b] + cb, and gs[b] = cw^T @ ga[b] in the backward."""
    b = tl.program_id(0).to(tl.int64)
    o = tl.arange(0, BC)
    i = tl.arange(0, BC)
    lo = o < Cg
    li = i < Cg
    cw = tl.load(cw_ptr + o[:, None] * Cg + i[None, :], mask=lo[:, None] & li[None, :], other=0.0).to(ACC)
    s = tl.load(s_ptr + b * Cg + i, mask=li, other=0.0)
    a = tl.sum(cw * s[None, :], axis=1) + tl.load(cb_ptr + o, mask=lo, other=0.0).to(ACC)
    tl.store(a_ptr + b * Cg + o, a, mask=lo)
    if BACKWARD:
        ga = tl.load(ga_ptr + b * Cg + o, mask=lo, other=0.0)
        tl.store(gs_ptr + b * Cg + i, tl.sum(cw * ga[:, None], axis=0), mask=li)


@triton.jit
def _ca_grad_kernel(s_ptr, ga_ptr, dcw_ptr, dcb_ptr, B, Cg, BC: tl.constexpr, ACC: tl.constexpr):
    """dcw[o, i] = sum_b ga[b, o] s[b, i], dcb[o] = sum_b ga[b, o]: one program."""
    o = tl.arange(0, BC)
    i = tl.arange(0, BC)
    lo = o < Cg
    li = i < Cg
    dcw = tl.zeros([BC, BC], dtype=ACC)
    dcb = tl.zeros([BC], dtype=ACC)
    for b in range(0, B):
        ga = tl.load(ga_ptr + b * Cg + o, mask=lo, other=0.0)
        s = tl.load(s_ptr + b * Cg + i, mask=li, other=0.0)
        dcw += ga[:, None] * s[None, :]
        dcb += ga
    tl.store(dcw_ptr + o[:, None] * Cg + i[None, :], dcw.to(dcw_ptr.dtype.element_ty),
             mask=lo[:, None] & li[None, :])
    tl.store(dcb_ptr + o, dcb.to(dcb_ptr.dtype.element_ty), mask=lo)


@triton.jit
def _scale_kernel(out_ptr, a_ptr, HW, BLOCK: tl.constexpr, ACC: tl.constexpr):
    grp = tl.program_id(0).to(tl.int64)
    a = tl.load(a_ptr + grp)
    for start in range(0, HW, BLOCK):
        e = start + tl.arange(0, BLOCK)
        live = e < HW
        v = tl.load(out_ptr + grp * HW + e, mask=live, other=0.0).to(ACC)
        tl.store(out_ptr + grp * HW + e, (v * a).to(out_ptr.dtype.element_ty), mask=live)


@triton.jit
def _gu_kernel(g_ptr, x_ptr, dw_ptr, db_ptr, a_ptr, gs_ptr, gu_ptr, C, Cg, H, W,
               K: tl.constexpr, GATE: tl.constexpr, BLOCK: tl.constexpr, ACC: tl.constexpr):
    grp = tl.program_id(0).to(tl.int64)
    b = grp // Cg
    c = grp % Cg
    HW = H * W
    a = tl.load(a_ptr + grp)
    gsn = tl.load(gs_ptr + grp) / HW
    for start in range(0, HW, BLOCK):
        e = start + tl.arange(0, BLOCK)
        live = e < HW
        u1, u2 = _gated_tile(x_ptr, dw_ptr, db_ptr, b, c, e, live, C, Cg, H, W, K, GATE, ACC)
        gy = tl.load(g_ptr + grp * HW + e, mask=live, other=0.0).to(ACC) * a + gsn
        if GATE:
            tl.store(gu_ptr + (b * C + c) * HW + e, gy * u2, mask=live)
            tl.store(gu_ptr + (b * C + c + Cg) * HW + e, gy * u1, mask=live)
        else:
            tl.store(gu_ptr + (b * C + c) * HW + e, gy, mask=live)


@triton.jit
def _dx_kernel(gu_ptr, dw_ptr, dx_ptr, C, H, W, K: tl.constexpr, BLOCK: tl.constexpr, ACC: tl.constexpr):
    plane = tl.program_id(0).to(tl.int64)
    c = plane % C
    HW = H * W
    for start in range(0, HW, BLOCK):
        e = start + tl.arange(0, BLOCK)
        live = e < HW
        h = e // W
        w = e % W
        acc = tl.zeros([BLOCK], dtype=ACC)
        for i in tl.static_range(K):
            for j in tl.static_range(K):
                hh = h - (i - K // 2)
                ww = w - (j - K // 2)
                m = live & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
                gv = tl.load(gu_ptr + plane * HW + hh * W + ww, mask=m, other=0.0)
                acc += tl.load(dw_ptr + c * K * K + i * K + j).to(ACC) * gv
        tl.store(dx_ptr + plane * HW + e, acc.to(dx_ptr.dtype.element_ty), mask=live)


@triton.jit
def _dw_grad_kernel(gu_ptr, x_ptr, part_ptr, B, C, H, W, STEP,
                    K: tl.constexpr, BLOCK: tl.constexpr, ACC: tl.constexpr):
    """Program (c * (k*k + 1) + tap, q): tap < k*k a weight, tap == k*k the bias; pixels
    [q * STEP, (q + 1) * STEP) of every image, the partial sum to part_ptr[job, q]."""
    job = tl.program_id(0).to(tl.int64)
    q = tl.program_id(1)
    c = job // (K * K + 1)
    tap = job % (K * K + 1)
    di = tap // K - K // 2
    dj = tap % K - K // 2
    is_bias = tap == K * K
    HW = H * W
    acc = tl.zeros([BLOCK], dtype=ACC)
    for b in range(0, B):
        base = (b * C + c) * HW
        for start in range(q * STEP, tl.minimum(q * STEP + STEP, HW), BLOCK):
            e = start + tl.arange(0, BLOCK)
            live = e < HW
            hh = e // W + di
            ww = e % W + dj
            gv = tl.load(gu_ptr + base + e, mask=live, other=0.0)
            m = live & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W) & (not is_bias)
            xv = tl.load(x_ptr + base + hh * W + ww, mask=m, other=0.0).to(ACC)
            acc += gv * tl.where(is_bias, 1.0, xv)
    tl.store(part_ptr + job * tl.num_programs(1) + q, tl.sum(acc, axis=0))


# Programs that keep every SM of an H100 (132) busy for two waves at several programs each: the
# reductions over a plane split it into chunks of whole BLOCKs until they reach this many.
_TWO_WAVES = 2 * 132 * 8


def _chunks(jobs, HW, BLOCK):
    """(chunks, STEP): HW split into whole-BLOCK chunks of STEP pixels for `jobs` programs."""
    blocks = triton.cdiv(HW, BLOCK)
    per = triton.cdiv(blocks, max(1, min(blocks, triton.cdiv(_TWO_WAVES, max(jobs, 1)))))
    return triton.cdiv(blocks, per), per * BLOCK


def _pooled(x, dw, db, g, out, dims, acc, meta, gate):
    """Pass 1 as (group, chunk) programs: the means s (and ga, the sums of g * y, when g is given),
    each group's chunk partials added in a fixed order."""
    B, C, Cg, H, W = dims
    G = B * Cg
    chunks, step = _chunks(G, H * W, meta["BLOCK"])
    ps = torch.empty(2, G, chunks, dtype=acc, device=x.device)
    backward = g is not None
    _pool_kernel[(G, chunks)](x, dw, db, g if backward else x, x if backward else out, ps[0], ps[1], C, Cg, H, W,
                              step, GATE=gate, BACKWARD=backward, **meta)
    sums = ps.sum(2)
    return sums[0] / (H * W), sums[1]


def _prep(x, dw, db, cw, cb, gate):
    x, dw, db, cw, cb = (t.contiguous() for t in (x, dw, db, cw, cb))
    B, C, H, W = x.shape
    Cg = C // 2 if gate else C
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    meta = dict(K=dw.shape[-1], BLOCK=min(1024, triton.next_power_of_2(max(1, H * W))),
                ACC=acc_dtype(x.dtype))
    return (x, dw, db, cw, cb), (B, C, Cg, H, W), acc, meta


def dwconv_gate_ca_fwd(x, dw_weight, dw_bias, ca_weight, ca_bias, gate):
    (x, dw, db, cw, cb), (B, C, Cg, H, W), acc, meta = _prep(x, dw_weight, dw_bias, ca_weight, ca_bias, gate)
    # Half types: the gated map waits for its scale in float32, so the result is rounded once
    # (docs/design.md, Dtypes); float32/float64 scale it in place.
    out = torch.empty(B, Cg, H, W, dtype=acc if x.dtype in (torch.float16, torch.bfloat16) else x.dtype,
                      device=x.device)
    G = B * Cg
    if out.numel() == 0:
        return out.to(x.dtype)
    s, _ = _pooled(x, dw, db, None, out, (B, C, Cg, H, W), acc, meta, gate)
    a = torch.empty_like(s)
    BC = triton.next_power_of_2(Cg)
    _mix_kernel[(B,)](cw, cb, s, s, a, a, Cg, BACKWARD=False, BC=BC, ACC=meta["ACC"])
    _scale_kernel[(G,)](out, a, H * W, BLOCK=meta["BLOCK"], ACC=meta["ACC"])
    return out.to(x.dtype)


def dwconv_gate_ca_bwd(grad_out, x, dw_weight, dw_bias, ca_weight, ca_bias, gate):
    (x, dw, db, cw, cb), (B, C, Cg, H, W), acc, meta = _prep(x, dw_weight, dw_bias, ca_weight, ca_bias, gate)
    g = grad_out.to(x.dtype).contiguous()
    dx, ddw, ddb, dcw, dcb = (torch.zeros_like(t) for t in (x, dw, db, cw, cb))
    G = B * Cg
    if x.numel() == 0:
        return dx, ddw, ddb, dcw, dcb
    s, ga = _pooled(x, dw, db, g, None, (B, C, Cg, H, W), acc, meta, gate)
    a, gs = torch.empty(2, G, dtype=acc, device=x.device).unbind(0)
    gu = torch.empty(B, C, H, W, dtype=acc, device=x.device)
    BC = triton.next_power_of_2(Cg)
    _mix_kernel[(B,)](cw, cb, s, ga, a, gs, Cg, BACKWARD=True, BC=BC, ACC=meta["ACC"])
    _ca_grad_kernel[(1,)](s, ga, dcw, dcb, B, Cg, BC=BC, ACC=meta["ACC"])
    _gu_kernel[(G,)](g, x, dw, db, a, gs, gu, C, Cg, H, W, GATE=gate, **meta)
    _dx_kernel[(B * C,)](gu, dw, dx, C, H, W, K=meta["K"], BLOCK=meta["BLOCK"], ACC=meta["ACC"])
    taps = meta["K"] ** 2 + 1
    chunks, step = _chunks(C * taps, H * W, meta["BLOCK"])
    part = torch.empty(C * taps, chunks, dtype=acc, device=x.device)
    _dw_grad_kernel[(C * taps, chunks)](gu, x, part, B, C, H, W, step, **meta)
    sums = part.sum(1).view(C, taps)
    ddw.copy_(sums[:, :-1].reshape(ddw.shape))
    ddb.copy_(sums[:, -1])
    return dx, ddw, ddb, dcw, dcb
