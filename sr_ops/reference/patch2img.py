"""patch2img the pure-PyTorch way: `F.fold` of the patches divided by `F.fold` of ones."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sr_ops._validate import grid


def coverage(out_size, patch_size: int, stride: int, like: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W): how many patches of the grid cover each output pixel."""
    H, W = out_size
    m = grid(H, patch_size, stride) * grid(W, patch_size, stride)
    ones = like.new_ones(1, patch_size * patch_size, m)
    return F.fold(ones, (H, W), patch_size, stride=stride)


def patch2img(patches: torch.Tensor, out_size, patch_size: int, stride: int) -> torch.Tensor:
    """(B, L, C, P, P) patches on a row-major grid with stride `stride` -> (B, C, H, W),
    each pixel the mean of the patches covering it (0 where none does)."""
    B, L, C, P, _ = patches.shape
    cols = patches.permute(0, 2, 3, 4, 1).reshape(B, C * P * P, L)
    summed = F.fold(cols, tuple(out_size), P, stride=stride)
    count = coverage(out_size, P, stride, patches)
    return torch.where(count > 0, summed / count.clamp(min=1), torch.zeros_like(summed))


def patch2img_backward(grad_out: torch.Tensor, patch_size: int, stride: int) -> torch.Tensor:
    """Gradient of patch2img: (B, C, H, W) -> (B, L, C, P, P)."""
    B, C, H, W = grad_out.shape
    P = patch_size
    L = grid(H, P, stride) * grid(W, P, stride)  # spelled out: a -1 cannot size 0 elements (B = 0)
    scaled = grad_out / coverage((H, W), P, stride, grad_out).clamp(min=1)
    cols = F.unfold(scaled, P, stride=stride)  # (B, C*P*P, L)
    return cols.reshape(B, C, P, P, L).permute(0, 4, 1, 2, 3).contiguous()
