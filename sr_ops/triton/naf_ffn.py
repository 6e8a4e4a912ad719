"""Triton forward of naf_ffn (the CPU kernel's plan, csrc/cpu/naf_ffn.cpp): each program
takes BP neighbouring pixels of one image as a [BC, BP] tile of y, normalises it over the
channels in registers (the LayerNorm prologue), runs the two 1x1 convolutions as tl.dot
(W_in's two halves [BF, BC] and W_out [BC, BF], the weights re-read from L2 by every
program), SimpleGate between them and the residual as the epilogue: the (2F, H, W) and
(F, H, W) maps never reach memory. float32 dots use "ieee" precision (no TF32), so the
result matches the reference to float32 rounding; float64 runs the reference (tl.dot has
no float64 form)."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops.triton._round import to_out
from sr_ops.triton._util import acc_dtype


@triton.jit
def _fwd_kernel(y_ptr, nw_ptr, nb_ptr, wi_ptr, bi_ptr, wo_ptr, bo_ptr, g_ptr, out_ptr, C, F, HW, tiles, eps,
                BC: tl.constexpr, BF: tl.constexpr, BP: tl.constexpr, ACC: tl.constexpr):
    pid = tl.program_id(0)
    b = pid // tiles
    p = (pid % tiles) * BP + tl.arange(0, BP)
    c = tl.arange(0, BC)
    f = tl.arange(0, BF)
    cm, fm = c < C, f < F
    live = cm[:, None] & (p[None, :] < HW)
    ptrs = b.to(tl.int64) * C * HW + c[:, None].to(tl.int64) * HW + p[None, :]
    yv = tl.load(y_ptr + ptrs, mask=live, other=0.0).to(ACC)
    # Shifted sums about each pixel's channel-0 value, as layernorm2d's kernels.
    y0 = tl.load(y_ptr + b.to(tl.int64) * C * HW + p, mask=p < HW, other=0.0).to(ACC)
    d0 = tl.where(live, yv - y0[None, :], 0.0)
    dm = tl.sum(d0, axis=0) / C
    dev = tl.where(live, d0 - dm[None, :], 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(dev * dev, axis=0) / C + eps)
    nw = tl.load(nw_ptr + c, mask=cm, other=0.0).to(ACC)
    nb = tl.load(nb_ptr + c, mask=cm, other=0.0).to(ACC)
    xn = tl.where(live, dev * rstd[None, :] * nw[:, None] + nb[:, None], 0.0)
    wmask = fm[:, None] & cm[None, :]
    wa = tl.load(wi_ptr + f[:, None] * C + c[None, :], mask=wmask, other=0.0).to(ACC)
    wb = tl.load(wi_ptr + (F + f)[:, None] * C + c[None, :], mask=wmask, other=0.0).to(ACC)
    ba = tl.load(bi_ptr + f, mask=fm, other=0.0).to(ACC)
    bb = tl.load(bi_ptr + F + f, mask=fm, other=0.0).to(ACC)
    ha = tl.dot(wa, xn, input_precision="ieee") + ba[:, None]
    hb = tl.dot(wb, xn, input_precision="ieee") + bb[:, None]
    # Rows f >= F are the tile's padding: zero them, since a zero row of w_in times an inf of
    # xn is NaN there, and the next dot would spread it to every channel (0 * NaN).
    gate = tl.where(fm[:, None], ha * hb, 0.0)
    wo = tl.load(wo_ptr + c[:, None] * F + f[None, :], mask=cm[:, None] & fm[None, :], other=0.0).to(ACC)
    bo = tl.load(bo_ptr + c, mask=cm, other=0.0).to(ACC)
    gm = tl.load(g_ptr + c, mask=cm, other=0.0).to(ACC)
    z = tl.dot(wo, gate, input_precision="ieee") + bo[:, None]
    tl.store(out_ptr + ptrs, to_out(yv + gm[:, None] * z, out_ptr), mask=live)


def naf_ffn_fwd(y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps):
    if y.dtype == torch.float64:
        from sr_ops.ops.naf_ffn import _reference_fwd

        return _reference_fwd(y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps)
    y = y.contiguous()
    B, C, H, W = y.shape
    F = w_in.shape[0] // 2
    out = torch.empty_like(y)
    BC, BF = max(16, triton.next_power_of_2(C)), max(16, triton.next_power_of_2(F))
    # ~8 of each [BC, BP] / [BF, BC] tile's values per thread (256 threads): at NAFNet's
    # width 64 the kernel then fits in registers (64-pixel tiles at 4 warps spilled 15 KB).
    BP = 32 if max(BC, BF) <= 64 else 16
    tiles = triton.cdiv(H * W, BP)
    if out.numel():
        _fwd_kernel[(B * tiles,)](y, norm_weight.contiguous(), norm_bias.contiguous(), w_in.contiguous(),
                                  b_in.contiguous(), w_out.contiguous(), b_out.contiguous(), gamma.contiguous(),
                                  out, C, F, H * W, tiles, eps, BC=BC, BF=BF, BP=BP, ACC=acc_dtype(y.dtype),
                                  num_warps=8)
    return out
