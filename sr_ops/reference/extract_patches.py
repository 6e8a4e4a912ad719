"""extract_patches the pure-PyTorch way: a covering grid of coordinates, then crops."""
from __future__ import annotations

import torch

from sr_ops._validate import grid
from sr_ops.reference.gather_patches import gather_patches, gather_patches_backward


def grid_positions(n: int, patch_size: int, stride: int) -> list[int]:
    """Top-left positions 0, t, 2t, ... along an axis of length n, plus n - P when the
    regular grid stops short of the border (so every pixel is covered, no duplicate)."""
    pos = list(range(0, n - patch_size + 1, stride))
    if pos[-1] != n - patch_size:
        pos.append(n - patch_size)
    return pos


def grid_count(n, patch_size: int, stride: int):
    """len(grid_positions(n, patch_size, stride)), also for symbolic n."""
    m = grid(n, patch_size, stride)
    return m if (n - patch_size) % stride == 0 else m + 1


def patch_coords(B: int, H: int, W: int, patch_size: int, stride: int, device=None) -> torch.Tensor:
    """(N, 3) int64 (batch, row, col), batch-major, then row, then col."""
    rows = torch.tensor(grid_positions(H, patch_size, stride), dtype=torch.int64, device=device)
    cols = torch.tensor(grid_positions(W, patch_size, stride), dtype=torch.int64, device=device)
    b = torch.arange(B, dtype=torch.int64, device=device)
    bb, rr, cc = torch.meshgrid(b, rows, cols, indexing="ij")
    return torch.stack([bb.reshape(-1), rr.reshape(-1), cc.reshape(-1)], dim=1)


def extract_patches(img: torch.Tensor, patch_size: int, stride: int):
    """(B, C, H, W) -> patches (N, C, P, P), coords (N, 3) int64 of a covering grid."""
    B, _, H, W = img.shape
    coords = patch_coords(B, H, W, patch_size, stride, img.device)
    order = torch.arange(coords.shape[0], device=img.device)
    return gather_patches(img, coords, order, patch_size), coords


def extract_patches_backward(grad_patches: torch.Tensor, coords: torch.Tensor, img_size) -> torch.Tensor:
    """Gradient of extract_patches: (N, C, P, P) -> (B, C, H, W), overlaps summed."""
    order = torch.arange(coords.shape[0], device=coords.device)
    return gather_patches_backward(grad_patches, coords, order, img_size)
