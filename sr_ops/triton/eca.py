"""Triton kernels for eca, in the three steps of csrc/kernels/eca.h: per-plane sums ((plane,
chunk) programs, enough chunks for two waves on an H100, their partials added in order),
the per-image gate step (one program per image, the k-tap convolution as k shifted masked
loads of the pooled vector), and
the elementwise pass (a program per block of one plane). The weight gradient is written
per image to a (B, k) buffer, summed afterwards in a fixed order (no atomics)."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops.triton._round import to_out
from sr_ops.triton._util import acc_dtype

BLOCK = 1024


@triton.jit
def _plane_sums_kernel(x_ptr, g_ptr, s_ptr, t_ptr, HW, STEP, WITH_G: tl.constexpr,
                       BLOCK: tl.constexpr, ACC: tl.constexpr):
    """Program (plane, q): values [q * STEP, (q + 1) * STEP) of the plane, the partial sums of x
    (and g * x) to s_ptr / t_ptr[plane, q] (added in order by _pooled)."""
    pl = tl.program_id(0).to(tl.int64)
    q = tl.program_id(1)
    base = pl * HW
    s = tl.zeros([BLOCK], dtype=ACC)
    t = tl.zeros([BLOCK], dtype=ACC)
    for start in range(q * STEP, tl.minimum(q * STEP + STEP, HW), BLOCK):
        e = start + tl.arange(0, BLOCK)
        live = e < HW
        xv = tl.load(x_ptr + base + e, mask=live, other=0.0).to(ACC)
        s += xv
        if WITH_G:
            t += xv * tl.load(g_ptr + base + e, mask=live, other=0.0).to(ACC)
    at = pl * tl.num_programs(1) + q
    tl.store(s_ptr + at, tl.sum(s, axis=0))
    if WITH_G:
        tl.store(t_ptr + at, tl.sum(t, axis=0))


# Programs that keep every SM of an H100 (132) busy for two waves at several programs each:
# RT4KSR's 24 planes of 1920x1080 would otherwise be 24 programs.
_TWO_WAVES = 2 * 132 * 8


def _pooled(x, g, planes, HW, ACC):
    """The plane means s (and the plane sums t of g * x when g is given) from (plane, chunk)
    programs' partials, each plane's chunks added in a fixed order (deterministic)."""
    blocks = triton.cdiv(HW, BLOCK)
    per = triton.cdiv(blocks, max(1, min(blocks, triton.cdiv(_TWO_WAVES, max(planes, 1)))))
    chunks = triton.cdiv(blocks, per)
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    part = torch.empty(2, planes, chunks, dtype=acc, device=x.device)
    with_g = g is not None
    _plane_sums_kernel[(planes, chunks)](x, g if with_g else x, part[0], part[1], HW, per * BLOCK, WITH_G=with_g,
                                         BLOCK=BLOCK, ACC=ACC)
    sums = part.sum(2)
    return sums[0] / HW, sums[1]


@triton.jit
def _logit(s_ptr, w_ptr, b, m, C, k, BC: tl.constexpr, ACC: tl.constexpr):
    """a_m for the BC channel indices m (any, masked): sum_j w_j * s_{m + j - r}."""
    r = k // 2
    a = tl.zeros([BC], dtype=ACC)
    for j in range(0, k):
        src = m + j - r
        ok = (src >= 0) & (src < C)
        sv = tl.load(s_ptr + b * C + src, mask=ok, other=0.0)
        a += tl.load(w_ptr + j).to(ACC) * sv
    return a


@triton.jit
def _gate_kernel(s_ptr, w_ptr, gate_ptr, C, k, BC: tl.constexpr, ACC: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    c = tl.arange(0, BC)
    a = _logit(s_ptr, w_ptr, b, c, C, k, BC, ACC)
    tl.store(gate_ptr + b * C + c, 1.0 / (1.0 + tl.exp(-a)), mask=c < C)


@triton.jit
def _gate_bwd_kernel(s_ptr, t_ptr, w_ptr, gate_ptr, ds_ptr, gw_ptr, C, k, HW,
                     BC: tl.constexpr, ACC: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    c = tl.arange(0, BC)
    live = c < C
    r = k // 2
    a = _logit(s_ptr, w_ptr, b, c, C, k, BC, ACC)
    gate = 1.0 / (1.0 + tl.exp(-a))
    tl.store(gate_ptr + b * C + c, gate, mask=live)
    da = tl.load(t_ptr + b * C + c, mask=live, other=0.0) * gate * (1.0 - gate)
    # ds_c = sum_j w_j * da_{c - j + r}, each da_m recomputed from s (no cross-lane shuffles).
    ds = tl.zeros([BC], dtype=ACC)
    for j in range(0, k):
        m = c - j + r
        ok = (m >= 0) & (m < C)
        gm = 1.0 / (1.0 + tl.exp(-_logit(s_ptr, w_ptr, b, m, C, k, BC, ACC)))
        dam = tl.load(t_ptr + b * C + m, mask=ok, other=0.0) * gm * (1.0 - gm)
        ds += tl.load(w_ptr + j).to(ACC) * tl.where(ok, dam, 0.0)
    tl.store(ds_ptr + b * C + c, ds / HW, mask=live)
    for j in range(0, k):
        src = c + j - r
        ok = live & (src >= 0) & (src < C)
        sv = tl.load(s_ptr + b * C + src, mask=ok, other=0.0)
        tl.store(gw_ptr + b * k + j, tl.sum(tl.where(ok, da * sv, 0.0), axis=0))


@triton.jit
def _apply_kernel(x_ptr, gate_ptr, add_ptr, y_ptr, HW, chunks, WITH_ADD: tl.constexpr,
                  BLOCK: tl.constexpr, ACC: tl.constexpr):
    pid = tl.program_id(0)
    pl = (pid // chunks).to(tl.int64)
    e = (pid % chunks) * BLOCK + tl.arange(0, BLOCK)
    live = e < HW
    v = tl.load(x_ptr + pl * HW + e, mask=live, other=0.0).to(ACC) * tl.load(gate_ptr + pl)
    if WITH_ADD:
        v += tl.load(add_ptr + pl)
    tl.store(y_ptr + pl * HW + e, to_out(v, y_ptr), mask=live)


def _acc(x):
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def eca_fwd(x, weight):
    x, weight = x.contiguous(), weight.contiguous()
    B, C, H, W = x.shape
    HW, ACC = H * W, acc_dtype(x.dtype)
    y = torch.empty_like(x)
    if y.numel() == 0:
        return y
    s, _ = _pooled(x, None, B * C, HW, ACC)
    gate = torch.empty_like(s)
    _gate_kernel[(B,)](s, weight, gate, C, weight.shape[0], BC=triton.next_power_of_2(C), ACC=ACC)
    chunks = triton.cdiv(HW, BLOCK)
    _apply_kernel[(B * C * chunks,)](x, gate, gate, y, HW, chunks, WITH_ADD=False, BLOCK=BLOCK, ACC=ACC)
    return y


def eca_bwd(grad_out, x, weight):
    x, weight = x.contiguous(), weight.contiguous()
    grad_out = grad_out.to(x.dtype).contiguous()
    B, C, H, W = x.shape
    HW, ACC, k = H * W, acc_dtype(x.dtype), weight.shape[0]
    gx = torch.empty_like(x)
    if gx.numel() == 0:
        return gx, torch.zeros_like(weight)
    s, t = _pooled(x, grad_out, B * C, HW, ACC)
    gate, ds = torch.empty_like(s), torch.empty_like(s)
    gw = torch.empty(B, k, dtype=_acc(x), device=x.device)
    _gate_bwd_kernel[(B,)](s, t, weight, gate, ds, gw, C, k, HW, BC=triton.next_power_of_2(C), ACC=ACC)
    chunks = triton.cdiv(HW, BLOCK)
    _apply_kernel[(B * C * chunks,)](grad_out, gate, ds, gx, HW, chunks, WITH_ADD=True, BLOCK=BLOCK, ACC=ACC)
    return gx, gw.sum(0).to(weight.dtype)
