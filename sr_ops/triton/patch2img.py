"""Triton kernels for patch2img: output-stationary gather, like the CUDA kernel.

Index math is int32 (a handful of div.s32 per group of pixels, none per element), unless a
tensor has so many elements that its offsets leave int32: only then does the wrapper pick
the INDEX64 variant.

Load widths. Forward: a program's [BR, VEC] tile is BR groups of VEC consecutive output
pixels of one row; VEC divides the stride T, so a group lies in one T-wide cell and reads
VEC consecutive values of each covering patch's row, and VEC divides P, so a group is read
from a patch whole or not at all. Each patch row (P values) starts at a multiple of P
values, so VEC, the largest power of two dividing both P and T (at most 16 bytes), is the
widest load the layout allows: 128-bit loads of float32 need P and T multiples of 4
(IGNN at scale 4: 12x12 patches at stride 8). At IGNN's scale 2 (6x6 patches at stride 4)
a patch row is 6 float32 = 24 bytes at a 24-byte pitch, 8-byte aligned, so the forward
reads 64 bits a thread (VEC = 2) and no wider. (Only a layout that tells even rows from odd
ones could do better there: a patch is 144 bytes, 16-byte aligned, so values 0-3 of an even
row and 2-5 of an odd row are 16-byte aligned; 4 of each 6 values could come 128 bits wide,
the output groups of odd rows then straddling two stride cells. Not done.)

Backward: each program takes BR patch rows and reads a row's P values from the incoming
gradient's map in chunks of CH = 16 bytes, then the remainder in chunks of 4, 2, 1 values.
A chunk starts at x = T*j + 4k of an image row of W values, so it is read 128 bits wide
when T and W are multiples of 4 (the wrapper states W's divisibility): at P = 6, T = 4 a
row is a 128-bit and a 64-bit load. The stores (P values at a P pitch) are as wide as P's
alignment allows."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops._validate import grid
from sr_ops.triton._util import acc_dtype, launch_grid


@triton.jit
def _lanes(BR: tl.constexpr, INDEX64: tl.constexpr):
    pid = tl.program_id(0)
    if INDEX64:
        pid = pid.to(tl.int64)
    return pid * BR + tl.arange(0, BR)


@triton.jit
def _fwd_kernel(src, dst, R, C, H, W, NG, m1, m2, P: tl.constexpr, T: tl.constexpr,
                NCOVER: tl.constexpr, VEC: tl.constexpr, WDIV: tl.constexpr, ACC: tl.constexpr,
                BR: tl.constexpr, INDEX64: tl.constexpr):
    r = _lanes(BR, INDEX64)  # (b, c, y, group)
    live = r < R
    row = r // NG
    x0 = (r - row * NG) * VEC
    y = row % H
    bc = row // H
    b = bc // C
    c = bc - b * C
    w = tl.arange(0, VEC)[None, :]
    acc = tl.zeros([BR, VEC], dtype=ACC)
    cnt = tl.zeros([BR], dtype=ACC)
    # At most ceil(P/T) patches cover a pixel along each axis: rows y//T, y//T - 1, ...
    for di in tl.static_range(NCOVER):
        i = y // T - di
        py = y - T * i
        ok_i = live & (i >= 0) & (i < m1) & (py < P)
        for dj in tl.static_range(NCOVER):
            j = x0 // T - dj
            px = x0 - T * j  # a multiple of VEC, and VEC divides P: the group is in or out whole
            ok = ok_i & (j >= 0) & (j < m2) & (px < P)
            off = (((b * (m1 * m2) + i * m2 + j) * C + c) * P + py) * P + px
            acc += tl.load(src + (off[:, None] + w), mask=ok[:, None], other=0.0).to(ACC)
            cnt += ok.to(ACC)
    out = tl.where(cnt[:, None] > 0, acc / tl.maximum(cnt, 1.0)[:, None], 0.0)
    x = x0[:, None] + w
    # WDIV divides W (the wrapper's fact; Triton itself knows only W % 16 == 0). On the
    # row offsets it reaches the compiler, on the scalar W it is lost.
    ptrs = dst + tl.multiple_of(row * W, WDIV)[:, None] + x
    tl.store(ptrs, out.to(dst.dtype.element_ty), mask=live[:, None] & (x < W))


@triton.jit
def _bwd_chunk(src, dst, g_row, d_row, xj, ny, live, m2, W, P: tl.constexpr, T: tl.constexpr,
               X0: tl.constexpr, N: tl.constexpr, ACC: tl.constexpr):
    """Values X0 .. X0+N-1 of BR patch rows: g_row / d_row are the rows' offsets in the map and
    the patches, xj their patches' first column, ny how many patch rows cover each."""
    x = xj[:, None] + X0 + tl.arange(0, N)[None, :]
    nx = tl.minimum(m2 - 1, x // T) - tl.where(x < P, 0, (x - P) // T + 1) + 1
    g = tl.load(src + (g_row[:, None] + x), mask=live[:, None], other=0.0).to(ACC)
    out = g / (ny[:, None] * nx).to(ACC)
    tl.store(dst + (d_row[:, None] + X0 + tl.arange(0, N)[None, :]), out.to(dst.dtype.element_ty),
             mask=live[:, None])


@triton.jit
def _bwd_kernel(src, dst, R, C, H, W, m1, m2, P: tl.constexpr, T: tl.constexpr, CH: tl.constexpr,
                WDIV: tl.constexpr, ACC: tl.constexpr, BR: tl.constexpr, INDEX64: tl.constexpr):
    r = _lanes(BR, INDEX64)  # (b, patch, c, py)
    live = r < R
    rest = r // P
    py = r - rest * P
    blk = rest // C
    c = rest - blk * C
    b = blk // (m1 * m2)
    patch = blk - b * (m1 * m2)
    i = patch // m2
    y = T * i + py
    xj = T * (patch - i * m2)
    ny = tl.minimum(m1 - 1, y // T) - tl.where(y < P, 0, (y - P) // T + 1) + 1
    g_row = tl.multiple_of(((b * C + c) * H + y) * W, WDIV)  # WDIV divides W: see the forward
    d_row = r * P
    for k in tl.static_range(P // CH):
        _bwd_chunk(src, dst, g_row, d_row, xj, ny, live, m2, W, P, T, k * CH, CH, ACC)
    FULL: tl.constexpr = P // CH * CH
    if (P % CH) & 4:
        _bwd_chunk(src, dst, g_row, d_row, xj, ny, live, m2, W, P, T, FULL, 4, ACC)
    if (P % CH) & 2:
        _bwd_chunk(src, dst, g_row, d_row, xj, ny, live, m2, W, P, T, FULL + ((P % CH) & 4), 2, ACC)
    if (P % CH) & 1:
        _bwd_chunk(src, dst, g_row, d_row, xj, ny, live, m2, W, P, T, P - 1, 1, ACC)


_LANES = 1024  # values per program


def pow2_divisor(n: int, cap: int) -> int:
    """The largest power of two dividing n, at most cap."""
    d = 1
    while d < cap and n % (2 * d) == 0:
        d *= 2
    return d


def index64(*numels: int) -> bool:
    """Whether some tensor's offsets need int64 (with a program's spare lanes, whose offsets
    must not wrap into live ones)."""
    return max(numels) + _LANES >= 2**31


def patch2img_fwd(patches: torch.Tensor, out_size, patch_size: int, stride: int) -> torch.Tensor:
    patches = patches.contiguous()
    B, L, C, P, _ = patches.shape
    H, W = out_size
    m1, m2 = grid(H, P, stride), grid(W, P, stride)
    out = patches.new_empty(B, C, H, W)
    if out.numel():
        vec = pow2_divisor(P, pow2_divisor(stride, 16 // patches.element_size()))
        ng = triton.cdiv(W, vec)
        rows = B * C * H * ng
        br = _LANES // vec
        _fwd_kernel[launch_grid(rows, br)](
            patches, out, rows, C, H, W, ng, m1, m2, P=P, T=stride, NCOVER=-(-P // stride), VEC=vec,
            WDIV=pow2_divisor(W, 16), ACC=acc_dtype(patches.dtype), BR=br,
            INDEX64=index64(patches.numel(), out.numel()))
    return out


def patch2img_bwd(grad_out: torch.Tensor, patch_size: int, stride: int) -> torch.Tensor:
    grad_out = grad_out.contiguous()
    B, C, H, W = grad_out.shape
    P = patch_size
    m1, m2 = grid(H, P, stride), grid(W, P, stride)
    out = grad_out.new_empty(B, m1 * m2, C, P, P)
    if out.numel():
        rows = B * m1 * m2 * C * P
        br = triton.next_power_of_2(max(1, _LANES // P))
        _bwd_kernel[launch_grid(rows, br)](
            grad_out, out, rows, C, H, W, m1, m2, P=P, T=stride, CH=16 // grad_out.element_size(),
            WDIV=pow2_divisor(W, 16), ACC=acc_dtype(grad_out.dtype), BR=br,
            INDEX64=index64(grad_out.numel(), out.numel()))
    return out
