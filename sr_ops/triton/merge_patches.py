"""Triton kernels for merge_patches: the output-stationary paste averaging its windows (one
pass, no atomics; see gather_patches), and its backward, the crop divided by the coverage."""
from __future__ import annotations

import torch

from sr_ops.triton.gather_patches import coverage, crop, paste


def merge_patches_fwd(outputs: torch.Tensor, coords, order, out_size, scale: int) -> torch.Tensor:
    B, H, W = out_size
    return paste(outputs, coords, order, (scale * H, scale * W), B, scale, mean=True)


def merge_patches_bwd(grad: torch.Tensor, coords, order, patch_size: int, scale: int) -> torch.Tensor:
    B, _, HH, WW = grad.shape
    Q = scale * patch_size
    count = coverage(coords, order, (HH, WW), B, Q, scale)
    return crop(grad, coords, order, Q, scale, count)
