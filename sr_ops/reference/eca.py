"""ECA (efficient channel attention, ECA-Net / RT4KSR): gate each channel by a 1-D
convolution over the channels of the globally pooled map."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sr_ops import _validate as v


def _check(x, weight):
    v.tensor(x, "x", dims=4, doc="(B, C, H, W)")
    v.tensor(weight, "conv1d_weight")
    v.channels(x, "x", "eca")
    if not (weight.dim() == 1 or (weight.dim() == 3 and weight.shape[:2] == (1, 1))):
        raise ValueError(f"conv1d_weight must have shape (1, 1, k) or (k,), got {tuple(weight.shape)}")
    k = weight.shape[-1]
    if k % 2 == 0:
        raise ValueError(f"conv1d_weight's kernel size k must be odd, got {k}")
    if x.shape[2] * x.shape[3] == 0:
        raise ValueError(f"x must have at least one pixel to pool, got shape {tuple(x.shape)}")
    v.same_device(weight, "conv1d_weight", x, "x")


def eca(x: torch.Tensor, conv1d_weight: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W), conv1d_weight (1, 1, k) or (k,), k odd -> (B, C, H, W) in x's dtype:
    `x * sigmoid(conv1d(mean_HW(x), weight, padding=k // 2))`, the convolution along the
    channels, zero-padded, no bias. Computed in float32 at least."""
    _check(x, conv1d_weight)
    dtype = torch.promote_types(torch.promote_types(x.dtype, conv1d_weight.dtype), torch.float32)
    xf = x.to(dtype)
    k = conv1d_weight.shape[-1]
    pooled = xf.mean((2, 3)).unsqueeze(1)  # (B, 1, C)
    logits = F.conv1d(pooled, conv1d_weight.to(dtype).reshape(1, 1, k), padding=k // 2).squeeze(1)
    return (xf * torch.sigmoid(logits)[:, :, None, None]).to(x.dtype)
