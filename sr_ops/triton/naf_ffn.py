"""Triton forward of naf_ffn on tensor cores. A program owns BP pixels of one image as a
[BP, BC] tile (pixels x all channels), normalises it over the channels in registers (the
LayerNorm prologue), then walks F in chunks of BF: h = xn @ W_in's two halves, SimpleGate,
and the chunk's share of W_out accumulated into a [BP, BC] float32 tile; the residual is the
epilogue. The (2F, H, W) and (F, H, W) maps never reach memory.

Every dot runs on tensor cores: float32 by 3xTF32 (sr_ops/triton/_tf32.py; error bound in
docs/design.md), float16/bfloat16 by 2xTF32 (their weights are exact in TF32, the float32
activations are split), so the result keeps float32-level accuracy and halves are rounded
once, at the store. float64 multiplies on the CUDA cores (correctness only)."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops.triton import _tf32
from sr_ops.triton._round import to_out
from sr_ops.triton._tf32 import mm_w
from sr_ops.triton._util import acc_dtype


@triton.jit
def ln_tile(y_ptr, base, p, c, C, HW, nw, nb, eps, ACC: tl.constexpr):
    """The [BP, BC] tile of y at pixels p and channels c, normalised: (y, xhat, xn, rstd, live).
    Shifted sums about each pixel's channel-0 value, as layernorm2d's kernels."""
    live = (p[:, None] < HW) & (c[None, :] < C)
    yv = tl.load(y_ptr + base + c[None, :] * HW + p[:, None], mask=live, other=0.0).to(ACC)
    y0 = tl.load(y_ptr + base + p, mask=p < HW, other=0.0).to(ACC)
    d0 = tl.where(live, yv - y0[:, None], 0.0)
    dev = tl.where(live, d0 - (tl.sum(d0, axis=1) / C)[:, None], 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(dev * dev, axis=1) / C + eps)
    # Masked too: a padding pixel has zero variance, and with eps = 0 its 0 * inf is NaN, which
    # the backward's per-channel sums (sum of gxn * xhat) would take in.
    xhat = tl.where(live, dev * rstd[:, None], 0.0)
    xn = tl.where(live, xhat * nw[None, :] + nb[None, :], 0.0)
    return yv, xhat, xn, rstd, live


@triton.jit
def load_t(ptr, rows, cols, stride, mask, ACC: tl.constexpr):
    """[len(rows), len(cols)] of the row-major matrix at ptr (row stride `stride`), transposed
    on load when rows index its columns."""
    return tl.load(ptr + rows[:, None] + cols[None, :] * stride, mask=mask, other=0.0).to(ACC)


@triton.jit
def _fwd_kernel(y_ptr, nw_ptr, nb_ptr, wih_ptr, wic_ptr, wil_ptr, bi_ptr, woh_ptr, woc_ptr, wol_ptr, bo_ptr,
                g_ptr, out_ptr, C, F, HW, tiles, eps, BC: tl.constexpr, BF: tl.constexpr, BP: tl.constexpr,
                MODE: tl.constexpr, ACC: tl.constexpr, IDX64: tl.constexpr):
    pid = tl.program_id(0)
    b = pid // tiles
    p = (pid % tiles) * BP + tl.arange(0, BP)
    c = tl.arange(0, BC)
    cm = c < C
    base = b.to(tl.int64) * C * HW if IDX64 else b * C * HW
    nw = tl.load(nw_ptr + c, mask=cm, other=0.0).to(ACC)
    nb = tl.load(nb_ptr + c, mask=cm, other=0.0).to(ACC)
    _, _, xn, _, live = ln_tile(y_ptr, base, p, c, C, HW, nw, nb, eps, ACC)
    acc = tl.zeros([BP, BC], ACC)
    for f0 in range(0, F, BF):
        f = f0 + tl.arange(0, BF)
        fm = f < F
        mi = cm[:, None] & fm[None, :]  # W_in^T chunk [BC, BF]: element (c, f) at f * C + c
        ha = mm_w(xn, load_t(wih_ptr, c, f, C, mi, ACC), load_t(wic_ptr, c, f, C, mi, ACC),
                  load_t(wil_ptr, c, f, C, mi, ACC), tl.zeros([BP, BF], ACC), MODE, True)
        hb = mm_w(xn, load_t(wih_ptr + F * C, c, f, C, mi, ACC), load_t(wic_ptr + F * C, c, f, C, mi, ACC),
                  load_t(wil_ptr + F * C, c, f, C, mi, ACC), tl.zeros([BP, BF], ACC), MODE, True)
        ha += tl.load(bi_ptr + f, mask=fm, other=0.0).to(ACC)[None, :]
        hb += tl.load(bi_ptr + F + f, mask=fm, other=0.0).to(ACC)[None, :]
        # Columns f >= F are the tile's padding: zeroed, since a zero column of W_in times an
        # inf of xn is NaN there, and the next dot would spread it to every channel.
        s = tl.where(fm[None, :], ha * hb, 0.0)
        mo = fm[:, None] & cm[None, :]  # W_out^T chunk [BF, BC]: element (f, c) at c * F + f
        acc = mm_w(s, load_t(woh_ptr, f, c, F, mo, ACC), load_t(woc_ptr, f, c, F, mo, ACC),
                   load_t(wol_ptr, f, c, F, mo, ACC), acc, MODE, False)
    bo = tl.load(bo_ptr + c, mask=cm, other=0.0).to(ACC)
    gm = tl.load(g_ptr + c, mask=cm, other=0.0).to(ACC)
    ptrs = base + c[None, :] * HW + p[:, None]
    yv = tl.load(y_ptr + ptrs, mask=live, other=0.0).to(ACC)  # re-read (L1/L2): not held over the loop
    tl.store(out_ptr + ptrs, to_out(yv + gm[None, :] * (acc + bo[None, :]), out_ptr), mask=live)


def tiles_for(C: int, F: int, dtype: torch.dtype) -> tuple[int, int, int, int]:
    """(BC, BF, BP, num_warps). 64-pixel tiles feed a warpgroup MMA (M = 64 on sm_90); F is
    walked in 32-wide chunks so the two [BP, BF] halves of h stay small next to the [BP, BC]
    normalised tile (split into hi and lo) and the accumulator. No spill at C = 32, 64 on
    sm_80/sm_90; C = 128 (8 warps) still spills in float32 (docs/design.md, naf_ffn). float64
    takes small tiles: its products are a [BP, BC, BF] register broadcast."""
    BC = _tf32.block(C)
    if dtype == torch.float64:
        return BC, 16, 16, 4
    return BC, min(32, _tf32.block(F)), 64, 8 if BC >= 128 else 4


def weights(w_in, w_out, mode):
    """W_in and W_out split for mm_w: three contiguous tensors each."""
    return _tf32.split_host(w_in.contiguous(), mode), _tf32.split_host(w_out.contiguous(), mode)


def naf_ffn_fwd(y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps):
    y = y.contiguous()
    B, C, H, W = y.shape
    F = w_in.shape[0] // 2
    out = torch.empty_like(y)
    if not out.numel():
        return out
    mode = _tf32.mode_for(y.dtype)
    BC, BF, BP, warps = tiles_for(C, F, y.dtype)
    tiles = triton.cdiv(H * W, BP)
    wi, wo = weights(w_in, w_out, mode)
    _fwd_kernel[(B * tiles,)](y, norm_weight.contiguous(), norm_bias.contiguous(), *wi, b_in.contiguous(), *wo,
                              b_out.contiguous(), gamma.contiguous(), out, C, F, H * W, tiles, eps, BC=BC, BF=BF,
                              BP=BP, MODE=mode, ACC=acc_dtype(y.dtype), IDX64=y.numel() >= 2**31, num_warps=warps,
                              num_stages=1)
    return out
