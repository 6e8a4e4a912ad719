"""The inverse index of the output-stationary pastes (gather_patches' backward, merge_patches).

The pasted image is cut into TILE_H x TILE_W tiles per batch image. Each window is binned
into every tile it overlaps, by a stable sort of (window, tile) keys generated in window
order, so each tile's list holds exactly the windows that can touch it, in ascending
sequence position. A kernel program then owns one tile and sums, per pixel, the windows of
its list in that order: no atomics, the same bits on every run and for every tile size.
csrc/cuda/patch_tiles_glue.h builds the same index with ATen ops for the CUDA kernels.
"""
from __future__ import annotations

import torch

TILE_H, TILE_W = 16, 64


def tiles_of(length: int, tile: int) -> int:
    return -(-length // tile)


def span(Q: int, tile: int) -> int:
    """Most tiles a Q-wide window can overlap along an axis of tile-wide tiles."""
    return (Q - 1) // tile + 2


def build(coords: torch.Tensor, order: torch.Tensor, B: int, H: int, W: int, Q: int, scale: int):
    """Windows coords[order[i]] * scale (Q x Q) on (B, H, W) -> (wy, wx, start, win).

    wy, wx (N,) int32: each window's top-left pixel; start (tiles + 1,) int32: tile t's
    windows are win[start[t]:start[t + 1]] (int32 sequence positions, ascending), tiles
    numbered (b * tiles_y + ty) * tiles_x + tx.
    """
    ty_n, tx_n = tiles_of(H, TILE_H), tiles_of(W, TILE_W)
    n_tiles = B * ty_n * tx_n
    sel = coords.index_select(0, order)
    b, wy, wx = sel[:, 0], scale * sel[:, 1], scale * sel[:, 2]
    ky, kx = span(Q, TILE_H), span(Q, TILE_W)
    dev = coords.device
    ty = (wy // TILE_H)[:, None, None] + torch.arange(ky, device=dev)[None, :, None]
    tx = (wx // TILE_W)[:, None, None] + torch.arange(kx, device=dev)[None, None, :]
    hit = (ty <= ((wy + Q - 1) // TILE_H)[:, None, None]) & (tx <= ((wx + Q - 1) // TILE_W)[:, None, None])
    # int32 keys sort faster; a miss takes the key past the last tile, so it sorts last.
    key = torch.where(hit, (b[:, None, None] * ty_n + ty) * tx_n + tx, n_tiles).to(torch.int32).flatten()
    sorted_key, perm = torch.sort(key, stable=True)
    win = (perm // (ky * kx)).to(torch.int32)
    bounds = torch.arange(n_tiles + 1, device=dev, dtype=torch.int32)
    start = torch.searchsorted(sorted_key, bounds).to(torch.int32)
    return wy.to(torch.int32), wx.to(torch.int32), start, win, (ty_n, tx_n)
