"""merge_patches the pure-PyTorch way: paste-add every output and a count map, divide."""
from __future__ import annotations

import torch

from sr_ops.reference.gather_patches import crop, paste_add, wide


def coverage(coords: torch.Tensor, order: torch.Tensor, B: int, H: int, W: int, size: int, scale: int,
             like: torch.Tensor) -> torch.Tensor:
    """(B, 1, sH, sW): how many of the pasted size x size outputs cover each HR pixel."""
    ones = like.new_ones(order.shape[0], 1, size, size)
    return paste_add(ones, coords, order, like.new_zeros(B, 1, scale * H, scale * W), scale)


def merge_patches(outputs: torch.Tensor, coords: torch.Tensor, order: torch.Tensor, out_size,
                  scale: int) -> torch.Tensor:
    """(N, C, sP, sP) in `order` order -> (B, C, sH, sW), each pixel the mean of its covering
    outputs, 0 where none does. out_size = (B, H, W), the LR sizes."""
    B, H, W = out_size
    N, C, Q, _ = outputs.shape
    acc = outputs.new_zeros(B, C, scale * H, scale * W, dtype=wide(outputs.dtype))
    total = paste_add(outputs, coords, order, acc, scale)
    count = coverage(coords, order, B, H, W, Q, scale, acc)
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total)).to(outputs.dtype)


def merge_patches_backward(grad: torch.Tensor, coords: torch.Tensor, order: torch.Tensor, patch_size: int,
                           scale: int) -> torch.Tensor:
    """Gradient of merge_patches: (B, C, sH, sW) -> (N, C, sP, sP), each crop / its coverage."""
    B, C, HH, WW = grad.shape
    Q = scale * patch_size
    count = coverage(coords, order, B, HH // scale, WW // scale, Q, scale, grad)
    return crop(grad / count.clamp(min=1), coords, order, Q, scale)
