"""Small helpers shared by the Triton kernel modules."""
from __future__ import annotations

import torch
import triton
import triton.language as tl


def acc_dtype(dtype: torch.dtype):
    """Accumulate in float32, or float64 for float64 inputs (gradcheck)."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def launch_grid(n: int, block: int):
    return (triton.cdiv(n, block),)
