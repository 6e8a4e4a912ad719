"""Triton kernels for layernorm2d: each program takes BP neighbouring pixels of one image
as a [BC, BP] tile (BC = next_pow2(C)), so the channel reductions are in-register and
every load is a contiguous run of pixels. The backward writes each program's weight and
bias partial sums to a (programs, C) buffer, summed afterwards in a fixed order (no
atomics, deterministic). The formulas are those of csrc/kernels/layernorm2d.h.

eps arrives as a float32 scalar; float64 inputs still compute in float64. GELU (0: none,
1: exact, 2: tanh form) is gelu_layernorm2d's prologue, applied to x as it is loaded."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops.triton._round import to_out
from sr_ops.triton._util import acc_dtype


@triton.jit
def _gelu(x, GELU: tl.constexpr):
    if GELU == 1:
        x = 0.5 * x * (1.0 + tl.math.erf(x * 0.70710678118654752))
    elif GELU == 2:
        u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
        x = 0.5 * x * (2.0 - 2.0 / (1.0 + tl.exp(2.0 * u)))  # 1 + tanh(u)
    return x


@triton.jit
def _tile(x_ptr, pid, C, HW, tiles, eps, BC: tl.constexpr, BP: tl.constexpr, ACC: tl.constexpr,
          GELU: tl.constexpr):
    b = pid // tiles
    p = (pid % tiles) * BP + tl.arange(0, BP)
    c = tl.arange(0, BC)
    live = (c[:, None] < C) & (p[None, :] < HW)
    ptrs = b.to(tl.int64) * C * HW + c[:, None].to(tl.int64) * HW + p[None, :]
    xv = _gelu(tl.load(x_ptr + ptrs, mask=live, other=0.0).to(ACC), GELU)
    # Shifted sums about each pixel's channel-0 value (csrc/kernels/layernorm2d.h says why):
    # exact deviations at a mean 1e4x the spread, and exactly 0 for a pixel of equal values.
    x0 = _gelu(tl.load(x_ptr + b.to(tl.int64) * C * HW + p, mask=p < HW, other=0.0).to(ACC), GELU)
    d0 = tl.where(live, xv - x0[None, :], 0.0)
    dm = tl.sum(d0, axis=0) / C
    dev = tl.where(live, d0 - dm[None, :], 0.0)
    # Pixels past HW (the tile's padding) have variance 0: with eps = 0 their 1/sqrt would be
    # inf and 0 * inf a NaN in the backward's column sums, so they get rstd = 0.
    rstd = tl.where(p < HW, 1.0 / tl.sqrt(tl.sum(dev * dev, axis=0) / C + eps), 0.0)
    return ptrs, live, c, dev * rstd[None, :], rstd


@triton.jit
def _fwd_kernel(x_ptr, w_ptr, b_ptr, y_ptr, C, HW, tiles, eps,
                BC: tl.constexpr, BP: tl.constexpr, ACC: tl.constexpr, GELU: tl.constexpr):
    ptrs, live, c, xhat, _ = _tile(x_ptr, tl.program_id(0), C, HW, tiles, eps, BC, BP, ACC, GELU)
    w = tl.load(w_ptr + c, mask=c < C, other=0.0).to(ACC)
    b = tl.load(b_ptr + c, mask=c < C, other=0.0).to(ACC)
    y = xhat * w[:, None] + b[:, None]
    tl.store(y_ptr + ptrs, to_out(y, y_ptr), mask=live)


@triton.jit
def _bwd_kernel(g_ptr, x_ptr, w_ptr, gx_ptr, part_ptr, C, HW, tiles, eps,
                BC: tl.constexpr, BP: tl.constexpr, ACC: tl.constexpr):
    pid = tl.program_id(0)
    ptrs, live, c, xhat, rstd = _tile(x_ptr, pid, C, HW, tiles, eps, BC, BP, ACC, 0)
    w = tl.load(w_ptr + c, mask=c < C, other=0.0).to(ACC)
    g = tl.load(g_ptr + ptrs, mask=live, other=0.0).to(ACC)
    gw = g * w[:, None]
    a = tl.sum(gw, axis=0) / C
    bb = tl.sum(gw * xhat, axis=0) / C
    gx = rstd[None, :] * (gw - a[None, :] - xhat * bb[None, :])
    tl.store(gx_ptr + ptrs, to_out(gx, gx_ptr), mask=live)
    part = part_ptr + pid.to(tl.int64) * 2 * C
    tl.store(part + c, tl.sum(g * xhat, axis=1), mask=c < C)
    tl.store(part + C + c, tl.sum(g, axis=1), mask=c < C)


def _dims(x):
    B, C, H, W = x.shape
    BC = triton.next_power_of_2(C)
    BP = max(1, min(64, 4096 // BC))  # ~4K values per tile
    tiles = triton.cdiv(H * W, BP)
    return dict(C=C, HW=H * W, tiles=tiles, BC=BC, BP=BP, ACC=acc_dtype(x.dtype)), B * tiles


_GELU_MODES = {None: 0, "none": 1, "tanh": 2}


def layernorm2d_fwd(x, weight, bias, eps, gelu=None):
    """layernorm2d(x); with gelu="none" or "tanh", layernorm2d(F.gelu(x, approximate=gelu))."""
    x, weight, bias = x.contiguous(), weight.contiguous(), bias.contiguous()
    y = torch.empty_like(x)
    d, programs = _dims(x)
    if y.numel():
        _fwd_kernel[(programs,)](x, weight, bias, y, d["C"], d["HW"], d["tiles"], eps,
                                 BC=d["BC"], BP=d["BP"], ACC=d["ACC"], GELU=_GELU_MODES[gelu])
    return y


def layernorm2d_bwd(grad_out, x, weight, bias, eps):
    x, weight = x.contiguous(), weight.contiguous()
    grad_out = grad_out.to(x.dtype).contiguous()
    gx = torch.empty_like(x)
    d, programs = _dims(x)
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    part = torch.zeros(max(programs, 1), 2, x.shape[1], dtype=acc, device=x.device)
    if gx.numel():
        _bwd_kernel[(programs,)](grad_out, x, weight, gx, part, d["C"], d["HW"], d["tiles"], eps,
                                 BC=d["BC"], BP=d["BP"], ACC=d["ACC"])
    sums = part.sum(0)  # (2, C): two views of one tensor, so each is copied out
    return gx, sums[0].to(weight.dtype, copy=True), sums[1].to(bias.dtype, copy=True)
