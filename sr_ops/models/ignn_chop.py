"""The official IGNN test's chop (``utils/network_utils.py`` ``Chop``, on with
``TEST.CHOP=True``): the image is cut into four quadrants overlapping by ``shave`` LR
pixels, recursively until a quadrant has fewer than ``min_size`` LR pixels, each quadrant is
upscaled on its own (its own graph, searched within it) and the quadrants' inner parts are
pasted together.

The ×1/g son image is made once for the whole image and cropped with the quadrants (as the
official data loader makes it), not remade per quadrant. Sizes follow the official index
arithmetic exactly, so the pasted output is the official test's output.
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["official_chop"]


def official_chop(model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], son: torch.Tensor, x: torch.Tensor,
                  scale: int, son_scale: int, shave: int = 12, min_size: int = 40000) -> torch.Tensor:
    """``model(son_crop, x_crop) -> (B, C, scale·h, scale·w)`` over the quadrants of x
    (B, C, H, W) and son (B, C, H//g, W//g), g = ``son_scale``; returns (B, C, scale·H, scale·W)."""
    g = son_scale
    h_s, w_s = son.shape[-2:]
    h, w = x.shape[-2:]
    h0, w0 = h % g, w % g
    half_hs, half_ws = h_s // 2, w_s // 2
    size_hs, size_ws = half_hs + shave // g, half_ws + shave // g
    size_h, size_w = size_hs * g, size_ws * g
    sons = [son[..., :size_hs, :size_ws], son[..., :size_hs, w_s - size_ws:],
            son[..., h_s - size_hs:, :size_ws], son[..., h_s - size_hs:, w_s - size_ws:]]
    lrs = [x[..., :size_h + h0, :size_w + w0], x[..., :size_h + h0, w - size_w - w0:],
           x[..., h - size_h - h0:, :size_w + w0], x[..., h - size_h - h0:, w - size_w - w0:]]
    if size_w * size_h < min_size:
        srs = [model(s, lr) for s, lr in zip(sons, lrs)]
    else:
        srs = [official_chop(model, s, lr, scale, g, shave, min_size) for s, lr in zip(sons, lrs)]
    # paste: the official code works in HR pixels from here on
    H, W = scale * h, scale * w
    half_h, half_w = scale * half_hs * g, scale * half_ws * g
    size_h, size_w, h0, w0 = scale * size_h, scale * size_w, scale * h0, scale * w0
    out = x.new_empty(*x.shape[:-3], srs[0].shape[-3], H, W)
    top, left = size_h - H + half_h + h0, size_w - W + half_w + w0
    out[..., :half_h, :half_w] = srs[0][..., :half_h, :half_w]
    out[..., :half_h, half_w:] = srs[1][..., :half_h, left:size_w + w0]
    out[..., half_h:, :half_w] = srs[2][..., top:size_h + h0, :half_w]
    out[..., half_h:, half_w:] = srs[3][..., top:size_h + h0, left:size_w + w0]
    return out
