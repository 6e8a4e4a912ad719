"""Triton kernels for patch2img: output-stationary gather, like the CUDA kernel."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops._validate import grid
from sr_ops.triton._util import acc_dtype, launch_grid


@triton.jit
def _fwd_kernel(src, dst, N, C, H, W, m1, m2, P: tl.constexpr, T: tl.constexpr,
                NCOVER: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = offs < N
    x = offs % W
    y = (offs // W) % H
    c = (offs // (W * H)) % C
    b = offs // (W * H * C)
    acc = tl.zeros([BLOCK], dtype=ACC)
    cnt = tl.zeros([BLOCK], dtype=ACC)
    # At most ceil(P/T) patches cover a pixel along each axis: rows y//T, y//T - 1, ...
    for di in tl.static_range(NCOVER):
        i = y // T - di
        ok_i = (i >= 0) & (i < m1) & (y - T * i < P)
        for dj in tl.static_range(NCOVER):
            j = x // T - dj
            ok = live & ok_i & (j >= 0) & (j < m2) & (x - T * j < P)
            off = (((b * (m1 * m2) + i * m2 + j) * C + c) * P + (y - T * i)) * P + (x - T * j)
            acc += tl.load(src + off, mask=ok, other=0.0).to(ACC)
            cnt += ok.to(ACC)
    out = tl.where(cnt > 0, acc / tl.maximum(cnt, 1.0), 0.0)
    tl.store(dst + offs, out.to(dst.dtype.element_ty), mask=live)


@triton.jit
def _bwd_kernel(src, dst, N, C, H, W, m1, m2, P: tl.constexpr, T: tl.constexpr,
                ACC: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = offs < N
    px = offs % P
    py = (offs // P) % P
    c = (offs // (P * P)) % C
    bl = offs // (P * P * C)
    patch = bl % (m1 * m2)
    b = bl // (m1 * m2)
    y = T * (patch // m2) + py
    x = T * (patch % m2) + px
    ny = tl.minimum(m1 - 1, y // T) - tl.where(y < P, 0, (y - P) // T + 1) + 1
    nx = tl.minimum(m2 - 1, x // T) - tl.where(x < P, 0, (x - P) // T + 1) + 1
    g = tl.load(src + ((b * C + c) * H + y) * W + x, mask=live, other=0.0).to(ACC)
    tl.store(dst + offs, (g / (ny * nx).to(ACC)).to(dst.dtype.element_ty), mask=live)


_BLOCK = 256


def patch2img_fwd(patches: torch.Tensor, out_size, patch_size: int, stride: int) -> torch.Tensor:
    patches = patches.contiguous()
    B, L, C, P, _ = patches.shape
    H, W = out_size
    m1, m2 = grid(H, P, stride), grid(W, P, stride)
    out = patches.new_empty(B, C, H, W)
    n = out.numel()
    if n:
        _fwd_kernel[launch_grid(n, _BLOCK)](
            patches, out, n, C, H, W, m1, m2, P=P, T=stride, NCOVER=-(-P // stride),
            ACC=acc_dtype(patches.dtype), BLOCK=_BLOCK,
        )
    return out


def patch2img_bwd(grad_out: torch.Tensor, patch_size: int, stride: int) -> torch.Tensor:
    grad_out = grad_out.contiguous()
    B, C, H, W = grad_out.shape
    P = patch_size
    m1, m2 = grid(H, P, stride), grid(W, P, stride)
    out = grad_out.new_empty(B, m1 * m2, C, P, P)
    n = out.numel()
    if n:
        _bwd_kernel[launch_grid(n, _BLOCK)](
            grad_out, out, n, C, H, W, m1, m2, P=P, T=stride,
            ACC=acc_dtype(grad_out.dtype), BLOCK=_BLOCK,
        )
    return out
