"""Triton backward of naf_ffn on tensor cores (the dots as in naf_ffn.py: 3xTF32 for float32,
2xTF32 for halves). Nothing of the (2F, H, W) map is stored: both kernels recompute the
LayerNorm and h = xn @ W_in^T from y.

* _dx_kernel: a program walks a fixed range of [BP, BC] pixel tiles; per tile, F in chunks of
  BF: h, s = gate(h), gs = gz @ W_out, gxn += gh @ W_in; then the LayerNorm backward gives
  grad y. Its per-channel sums (norm weight/bias, b_out and g) are the program's partials.
  z = s @ W_out^T is never formed: grad gamma = sum_p g * z is, per channel c,
  sum_f W_out[c, f] * M[c, f] + b_out[c] * sum_p g[c] with M = g^T s, which _dw_kernel sums
  anyway (grad W_out = gamma[c] * M[c, f]): one [BP, BC] accumulator and a weight less here.
* _dw_kernel: program (k, j) walks group k's tiles for F-chunk j and accumulates that chunk's
  gh^T @ xn (W_in), g^T @ s (M above) and sum of gh (b_in) in registers, stored as its partials.
* _sum_kernel adds the partials over the groups in group order: no atomics, the same bits on
  every run. The group counts are constants, so the order depends on the shapes alone."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops.triton import _tf32
from sr_ops.triton._round import to_out
from sr_ops.triton._tf32 import mm, mm_w
from sr_ops.triton._util import acc_dtype
from sr_ops.triton.naf_ffn import ln_tile, load_t, weights

# Programs of each kernel at most: >= 2 waves on a 132-SM H100 at NAFNet-SR's size (C = 64,
# 512 x 512: 16384 tiles of 16 pixels; 1024 and 261 x 4 programs, one 8-warp program per SM
# at ~230-255 registers: ~8 waves). Constants, so the sums' order depends on the shapes alone.
DX_GROUPS, DW_PROGRAMS = 1056, 1056


@triton.jit
def _tile(pid, per, T):
    """The tile range [t0, t1) of group pid."""
    t0 = pid * per
    return t0, tl.minimum(t0 + per, T)


@triton.jit
def _dx_kernel(g_ptr, y_ptr, nw_ptr, nb_ptr, wih_ptr, wic_ptr, wil_ptr, bi_ptr, woh_ptr, woc_ptr, wol_ptr,
               gm_ptr, gx_ptr, part_ptr, C, F, HW, tiles, T, per, eps, BC: tl.constexpr, BF: tl.constexpr,
               BP: tl.constexpr, MODE: tl.constexpr, ACC: tl.constexpr, IDX64: tl.constexpr):
    pid = tl.program_id(0)
    c = tl.arange(0, BC)
    cm = c < C
    nw = tl.load(nw_ptr + c, mask=cm, other=0.0).to(ACC)
    nb = tl.load(nb_ptr + c, mask=cm, other=0.0).to(ACC)
    gm = tl.load(gm_ptr + c, mask=cm, other=0.0).to(ACC)
    s_nw = tl.zeros([BC], ACC)
    s_nb = tl.zeros([BC], ACC)
    s_bo = tl.zeros([BC], ACC)
    s_g = tl.zeros([BC], ACC)
    t0, t1 = _tile(pid, per, T)
    for t in range(t0, t1):
        b = t // tiles
        p = (t % tiles) * BP + tl.arange(0, BP)
        base = b.to(tl.int64) * C * HW if IDX64 else b * C * HW
        _, _, xn, _, live = ln_tile(y_ptr, base, p, c, C, HW, nw, nb, eps, ACC)
        ptrs = base + c[None, :] * HW + p[:, None]
        gz = tl.load(g_ptr + ptrs, mask=live, other=0.0).to(ACC) * gm[None, :]
        gxn = tl.zeros([BP, BC], ACC)
        for f0 in range(0, F, BF):
            f = f0 + tl.arange(0, BF)
            fm = f < F
            mi = cm[:, None] & fm[None, :]
            ha = mm_w(xn, load_t(wih_ptr, c, f, C, mi, ACC), load_t(wic_ptr, c, f, C, mi, ACC),
                      load_t(wil_ptr, c, f, C, mi, ACC), tl.zeros([BP, BF], ACC), MODE, True)
            hb = mm_w(xn, load_t(wih_ptr + F * C, c, f, C, mi, ACC), load_t(wic_ptr + F * C, c, f, C, mi, ACC),
                      load_t(wil_ptr + F * C, c, f, C, mi, ACC), tl.zeros([BP, BF], ACC), MODE, True)
            ha += tl.load(bi_ptr + f, mask=fm, other=0.0).to(ACC)[None, :]
            hb += tl.load(bi_ptr + F + f, mask=fm, other=0.0).to(ACC)[None, :]
            mo = fm[:, None] & cm[None, :]  # W_in chunk [BF, BC]
            # gs = gz @ W_out[:, chunk]: W_out's chunk [BC, BF] is element (c, f) at c * F + f.
            gs = mm_w(gz, load_t(woh_ptr, c * F, f, 1, mi, ACC), load_t(woc_ptr, c * F, f, 1, mi, ACC),
                      load_t(wol_ptr, c * F, f, 1, mi, ACC), tl.zeros([BP, BF], ACC), MODE, True)
            gha = tl.where(fm[None, :], gs * hb, 0.0)
            ghb = tl.where(fm[None, :], gs * ha, 0.0)
            # gxn += gh @ W_in: W_in's rows of the chunk [BF, BC], element (f, c) at f * C + c.
            gxn = mm_w(gha, load_t(wih_ptr, f * C, c, 1, mo, ACC), load_t(wic_ptr, f * C, c, 1, mo, ACC),
                       load_t(wil_ptr, f * C, c, 1, mo, ACC), gxn, MODE, False)
            gxn = mm_w(ghb, load_t(wih_ptr + F * C, f * C, c, 1, mo, ACC),
                       load_t(wic_ptr + F * C, f * C, c, 1, mo, ACC), load_t(wil_ptr + F * C, f * C, c, 1, mo, ACC),
                       gxn, MODE, False)
        # xhat, rstd and g re-read (L1/L2) rather than held over the F loop: registers.
        _, xhat, _, rstd, _ = ln_tile(y_ptr, base, p, c, C, HW, nw, nb, eps, ACC)
        g = tl.load(g_ptr + ptrs, mask=live, other=0.0).to(ACC)
        gxn = tl.where(live, gxn, 0.0)
        gxh = gxn * nw[None, :]
        m1 = tl.sum(gxh, axis=1) / C
        m2 = tl.sum(gxh * xhat, axis=1) / C
        gx = g + rstd[:, None] * (gxh - m1[:, None] - xhat * m2[:, None])
        tl.store(gx_ptr + ptrs, to_out(gx, gx_ptr), mask=live)
        s_nw += tl.sum(gxn * xhat, axis=0)
        s_nb += tl.sum(gxn, axis=0)
        s_bo += tl.sum(gz, axis=0)
        s_g += tl.sum(g, axis=0)
    out = part_ptr + pid * 4 * C + c
    tl.store(out, s_nw, mask=cm)
    tl.store(out + C, s_nb, mask=cm)
    tl.store(out + 2 * C, s_bo, mask=cm)
    tl.store(out + 3 * C, s_g, mask=cm)


@triton.jit
def _dw_kernel(g_ptr, y_ptr, nw_ptr, nb_ptr, wih_ptr, wic_ptr, wil_ptr, bi_ptr, woh_ptr, woc_ptr, wol_ptr, gm_ptr,
               part_ptr, C, F, HW, tiles, T, per, eps, BC: tl.constexpr, BF: tl.constexpr, BP: tl.constexpr,
               MODE: tl.constexpr, ACC: tl.constexpr, IDX64: tl.constexpr):
    pid = tl.program_id(0)
    f = tl.program_id(1) * BF + tl.arange(0, BF)
    c = tl.arange(0, BC)
    cm, fm = c < C, f < F
    mi = cm[:, None] & fm[None, :]
    nw = tl.load(nw_ptr + c, mask=cm, other=0.0).to(ACC)
    nb = tl.load(nb_ptr + c, mask=cm, other=0.0).to(ACC)
    gm = tl.load(gm_ptr + c, mask=cm, other=0.0).to(ACC)
    ba = tl.load(bi_ptr + f, mask=fm, other=0.0).to(ACC)
    bb = tl.load(bi_ptr + F + f, mask=fm, other=0.0).to(ACC)
    dwa = tl.zeros([BF, BC], ACC)
    dwb = tl.zeros([BF, BC], ACC)
    dwo = tl.zeros([BC, BF], ACC)
    dba = tl.zeros([BF], ACC)
    dbb = tl.zeros([BF], ACC)
    t0, t1 = _tile(pid, per, T)
    for t in range(t0, t1):
        b = t // tiles
        p = (t % tiles) * BP + tl.arange(0, BP)
        base = b.to(tl.int64) * C * HW if IDX64 else b * C * HW
        _, _, xn, _, live = ln_tile(y_ptr, base, p, c, C, HW, nw, nb, eps, ACC)
        g = tl.load(g_ptr + base + c[None, :] * HW + p[:, None], mask=live, other=0.0).to(ACC)
        gz = g * gm[None, :]
        ha = mm_w(xn, load_t(wih_ptr, c, f, C, mi, ACC), load_t(wic_ptr, c, f, C, mi, ACC),
                  load_t(wil_ptr, c, f, C, mi, ACC), tl.zeros([BP, BF], ACC), MODE, True) + ba[None, :]
        hb = mm_w(xn, load_t(wih_ptr + F * C, c, f, C, mi, ACC), load_t(wic_ptr + F * C, c, f, C, mi, ACC),
                  load_t(wil_ptr + F * C, c, f, C, mi, ACC), tl.zeros([BP, BF], ACC), MODE, True) + bb[None, :]
        pm = (p < HW)[:, None] & fm[None, :]  # padding pixels carry the biases: no gradient from them
        s = tl.where(pm, ha * hb, 0.0)
        gs = mm_w(gz, load_t(woh_ptr, c * F, f, 1, mi, ACC), load_t(woc_ptr, c * F, f, 1, mi, ACC),
                  load_t(wol_ptr, c * F, f, 1, mi, ACC), tl.zeros([BP, BF], ACC), MODE, True)
        gha = tl.where(pm, gs * hb, 0.0)
        ghb = tl.where(pm, gs * ha, 0.0)
        dwa = mm(tl.trans(gha), xn, dwa, MODE)
        dwb = mm(tl.trans(ghb), xn, dwb, MODE)
        dwo = mm(tl.trans(g), s, dwo, MODE)
        dba += tl.sum(gha, axis=0)
        dbb += tl.sum(ghb, axis=0)
    # Partials: [W_in (2F x C) | W_out (C x F) | b_in (2F)] per group.
    out = part_ptr + pid * (3 * F * C + 2 * F)
    tl.store(out + f[:, None] * C + c[None, :], dwa, mask=fm[:, None] & cm[None, :])
    tl.store(out + (F + f)[:, None] * C + c[None, :], dwb, mask=fm[:, None] & cm[None, :])
    tl.store(out + 2 * F * C + c[:, None] * F + f[None, :], dwo, mask=mi)
    tl.store(out + 3 * F * C + f, dba, mask=fm)
    tl.store(out + 3 * F * C + F + f, dbb, mask=fm)


@triton.jit
def _sum_kernel(part_ptr, out_ptr, G, N, BLOCK: tl.constexpr):
    """out[n] = sum over g of part[g, n], g in order."""
    n = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    acc = tl.load(part_ptr + n, mask=n < N, other=0.0)
    for g in range(1, G):
        acc += tl.load(part_ptr + g * N + n, mask=n < N, other=0.0)
    tl.store(out_ptr + n, acc, mask=n < N)


def _in_order(part: torch.Tensor) -> torch.Tensor:
    out = torch.empty(part.shape[1:], dtype=part.dtype, device=part.device)
    n = out.numel()
    _sum_kernel[(triton.cdiv(n, 256),)](part, out, part.shape[0], n, BLOCK=256, num_warps=4)
    return out


def tiles_for(C: int, F: int, dtype: torch.dtype) -> tuple[int, int, int, int]:
    """(BC, BF, BP, num_warps) of both kernels. Their loop bodies hold many more tiles than the
    forward's (xn and gz split into hi and lo, gxn, three split weight chunks, five [BP, BF]
    maps; _dw_kernel's three weight-gradient accumulators besides), so the tiles are small:
    16 pixels by 16 of F, mma.sync m16n8k8 (no warpgroup MMA below 64 rows), 8 warps from
    BC = 64 on. Measured with compile_check for sm_90 (docs/design.md, naf_ffn): no spill at
    C = 32 and 64; 64-pixel or 32-wide-F tiles spilled there."""
    BC = _tf32.block(C)
    if dtype == torch.float64:
        return BC, 16, 16, 4
    return BC, 16, 16, 8 if BC >= 64 else 4


def naf_ffn_bwd(grad, y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps):
    y, grad = y.contiguous(), grad.contiguous()
    B, C, H, W = y.shape
    F = w_in.shape[0] // 2
    ACC = torch.float64 if y.dtype == torch.float64 else torch.float32
    gx = torch.empty_like(y)
    like = (norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma)
    if not y.numel():
        return (gx.zero_(), *(torch.zeros_like(t, memory_format=torch.contiguous_format) for t in like))
    mode = _tf32.mode_for(y.dtype)
    BC, BF, BP, warps = tiles_for(C, F, y.dtype)
    tiles = triton.cdiv(H * W, BP)
    T = B * tiles
    wi, wo = weights(w_in, w_out, mode)
    nw, nb, bi, bo, gm = (t.contiguous() for t in (norm_weight, norm_bias, b_in, b_out, gamma))
    meta = dict(BC=BC, BF=BF, BP=BP, MODE=mode, ACC=acc_dtype(y.dtype), IDX64=y.numel() >= 2**31, num_warps=warps,
                num_stages=1)
    per = triton.cdiv(T, DX_GROUPS)
    groups = triton.cdiv(T, per)
    part = torch.empty(groups, 4, C, dtype=ACC, device=y.device)
    _dx_kernel[(groups,)](grad, y, nw, nb, *wi, bi, *wo, gm, gx, part, C, F, H * W, tiles, T, per, eps, **meta)
    d_nw, d_nb, d_bo, sum_g = _in_order(part)
    chunks = triton.cdiv(F, BF)
    per = triton.cdiv(T, max(1, DW_PROGRAMS // chunks))
    groups = triton.cdiv(T, per)
    part = torch.empty(groups, 3 * F * C + 2 * F, dtype=ACC, device=y.device)
    _dw_kernel[(groups, chunks)](grad, y, nw, nb, *wi, bi, *wo, gm, part, C, F, H * W, tiles, T, per, eps, **meta)
    total = _in_order(part)
    d_wi, m, d_bi = total[:2 * F * C].view(2 * F, C), total[2 * F * C:3 * F * C].view(C, F), total[3 * F * C:]
    gm = gm.to(ACC)
    d_wo = gm[:, None] * m
    d_gm = (w_out.to(ACC) * m).sum(1) + bo.to(ACC) * sum_g  # sum_p g z, z = s W_out^T + b_out
    grads = (d_nw, d_nb, d_wi, d_bi, d_wo, d_bo, d_gm)
    # Copies: the eight must not alias each other (views of the two sums otherwise).
    return (gx, *(d.to(t.dtype, copy=True).reshape(t.shape) for d, t in zip(grads, like)))
