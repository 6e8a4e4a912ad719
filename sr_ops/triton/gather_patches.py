"""Triton kernels for gather_patches, and the crop / paste launchers merge and extract reuse.

Both are output-stationary, with no atomics. A crop program copies ROWS window rows, each
row contiguous on both sides. A paste program owns one tile of the pasted image and one
channel, and sums, per pixel, the windows that patch_tiles binned into its tile, in
ascending sequence position (the same bits on every run). The sums are float64 for
float32 (as in the reference) so that averaging identical overlaps returns the value bit
for bit; float32 for the half types. Offsets are int32 unless a tensor holds >= 2**31
elements (IDX).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sr_ops.reference.gather_patches import wide
from sr_ops.triton import patch_tiles
from sr_ops.triton._util import acc_dtype

_I32 = 2**31


def _idx(*tensors_or_sizes) -> tl.dtype:
    """int32 offsets unless some tensor (or element count) reaches 2**31."""
    n = max(t.numel() if isinstance(t, torch.Tensor) else int(t) for t in tensors_or_sizes)
    return tl.int64 if n >= _I32 else tl.int32


def _align(W: int, scale: int) -> int:
    """4 when every window row starts 16-byte aligned in float32 (W and the corners' scale
    multiples of 4), else 1: a compile-time hint for the vector loads."""
    return 4 if W % 4 == 0 and scale % 4 == 0 else 1


@triton.jit
def _crop_kernel(src, dst, coords, order, count, rows, C, H, W, Q, scale, HAS_COUNT: tl.constexpr,
                 ACC: tl.constexpr, IDX: tl.constexpr, ALIGN: tl.constexpr, ROWS: tl.constexpr,
                 QB: tl.constexpr):
    # One lane per element; the (window, channel, row) split is per row, not per element.
    r = tl.program_id(0).to(IDX) * ROWS + tl.arange(0, ROWS).to(IDX)
    live = r < rows
    ic = r // Q
    py = (r - ic * Q).to(tl.int32)
    i = ic // C
    c = ic - i * C
    q = tl.load(order + i, mask=live, other=0)
    b = tl.load(coords + 3 * q, mask=live, other=0).to(IDX)
    y = scale * tl.load(coords + 3 * q + 1, mask=live, other=0).to(tl.int32) + py
    x = scale * tl.load(coords + 3 * q + 2, mask=live, other=0).to(tl.int32)
    px = tl.max_contiguous(tl.arange(0, QB), QB)
    m = live[:, None] & (px < Q)[None, :]
    srow = tl.multiple_of(((b * C + c) * H + y) * W + x, ALIGN)
    v = tl.load(src + srow[:, None] + px[None, :], mask=m, other=0.0)
    if HAS_COUNT:  # merge's backward: divide by the pixel's coverage
        crow = tl.multiple_of((b * H + y) * W + x, ALIGN)
        cnt = tl.load(count + crow[:, None] + px[None, :], mask=m, other=1)
        v = v.to(ACC) / tl.maximum(cnt, 1).to(ACC)
    tl.store(dst + r[:, None] * Q + px[None, :], v.to(dst.dtype.element_ty), mask=m)


@triton.jit
def _paste_kernel(src, dst, wy_ptr, wx_ptr, start, win, C, H, W, Q, tiles_y, tiles_x, MODE: tl.constexpr,
                  ACC: tl.constexpr, IDX: tl.constexpr, ALIGN: tl.constexpr, TH: tl.constexpr, TW: tl.constexpr):
    # MODE 0: sum, 1: mean, 2: coverage count only (dst int32 (B, H, W)).
    tile = tl.program_id(0)
    tx = tile % tiles_x
    ty = (tile // tiles_x) % tiles_y
    b = (tile // tiles_x // tiles_y).to(IDX)
    y = ty * TH + tl.arange(0, TH)
    x = tl.max_contiguous(tl.multiple_of(tx * TW + tl.arange(0, TW), TW), TW)
    k0 = tl.load(start + tile)
    k1 = tl.load(start + tile + 1)
    live = (y < H)[:, None] & (x < W)[None, :]
    pix = y[:, None] * W + x[None, :]
    for c in range(tl.program_id(1), C, tl.num_programs(1)):
        acc = tl.zeros([TH, TW], ACC)
        n = tl.zeros([TH, TW], tl.int32)
        for k in range(k0, k1):  # ascending sequence position: a fixed order per pixel
            i = tl.load(win + k)
            py = y - tl.load(wy_ptr + i)
            px = x - tl.load(wx_ptr + i)
            inside = ((py >= 0) & (py < Q))[:, None] & ((px >= 0) & (px < Q))[None, :]
            n += inside.to(tl.int32)
            if MODE != 2:
                # With ALIGN, window corners and Q are multiples of 4: runs of 4 share the mask.
                inside = tl.max_constancy(inside, [1, ALIGN])
                base = (i.to(IDX) * C + c) * Q * Q
                v = tl.load(src + base + py[:, None] * Q + tl.multiple_of(px, ALIGN)[None, :], mask=inside,
                            other=0.0)
                acc += v.to(ACC)
        if MODE == 2:
            tl.store(dst + b * H * W + pix, n, mask=live)
        else:
            if MODE == 1:  # an uncovered pixel's sum is exactly 0: 0 / 1 gives the contract's 0
                acc = acc / tl.maximum(n, 1).to(ACC)
            tl.store(dst + ((b * C + c) * H) * W + pix, acc.to(dst.dtype.element_ty), mask=live)


def crop(src: torch.Tensor, coords, order, size: int, scale: int = 1, count=None) -> torch.Tensor:
    """(B, C, H, W) -> (N, C, size, size) windows at scale*corner, / count (B, H, W) if given."""
    src = src.contiguous()
    _, C, H, W = src.shape
    out = src.new_empty(order.shape[0], C, size, size)
    rows = order.shape[0] * C * size
    if rows:
        qb = triton.next_power_of_2(size)
        block_rows = max(1, 2048 // qb)
        _crop_kernel[(triton.cdiv(rows, block_rows),)](
            src, out, coords, order, count if count is not None else coords, rows, C, H, W, size, scale,
            HAS_COUNT=count is not None, ACC=acc_dtype(src.dtype), IDX=_idx(src, out, rows + block_rows),
            ALIGN=_align(W, scale), ROWS=block_rows, QB=qb)
    return out


def _paste(src, coords, order, out_shape, size: int, scale: int, mode: int, dtype) -> torch.Tensor:
    B, C, H, W = out_shape
    out = torch.empty(out_shape, device=coords.device, dtype=dtype)
    if out.numel() == 0:
        return out
    wy, wx, start, win, (ty, tx) = patch_tiles.build(coords, order, B, H, W, size, scale)
    grid = (B * ty * tx, min(C, 65535))
    acc = tl.float64 if wide(dtype) == torch.float64 else tl.float32
    _paste_kernel[grid](src if src is not None else out, out, wy, wx, start, win, C, H, W, size, ty, tx, MODE=mode,
                        ACC=acc, IDX=_idx(out, src if src is not None else 0), ALIGN=_align(size, scale),
                        TH=patch_tiles.TILE_H, TW=patch_tiles.TILE_W)
    return out


def paste(src: torch.Tensor, coords, order, out_hw, B: int, scale: int = 1, mean: bool = False) -> torch.Tensor:
    """The (N, C, Q, Q) windows pasted at scale*corner into (B, C, H, W) of src's dtype:
    their sum, or with `mean` their average (0 where none lands), summed in wide(src.dtype)."""
    _, C, Q, _ = src.shape
    return _paste(src.contiguous(), coords, order, (B, C, *out_hw), Q, scale, 1 if mean else 0, src.dtype)


def coverage(coords, order, out_hw, B: int, size: int, scale: int) -> torch.Tensor:
    """(B, H, W) int32: how many size x size windows at scale*corner cover each pixel."""
    return _paste(None, coords, order, (B, 1, *out_hw), size, scale, 2, torch.int32)


def gather_patches_fwd(img: torch.Tensor, coords, order, patch_size: int) -> torch.Tensor:
    return crop(img, coords, order, patch_size)


def gather_patches_bwd(grad: torch.Tensor, coords, order, img_size) -> torch.Tensor:
    B, _, H, W = img_size
    return paste(grad, coords, order, (H, W), B)
