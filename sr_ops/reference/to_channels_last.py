"""to_channels_last: the same (B, C, H, W) values stored channels-last (stride(1) == 1)."""
from __future__ import annotations

import torch


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """x itself when already stored so, else a channels-last copy (torch's strided copy)."""
    return x.contiguous(memory_format=torch.channels_last)
