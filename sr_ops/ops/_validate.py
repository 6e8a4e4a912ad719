"""Argument checks shared by the public ops: clear errors that name the argument."""
from __future__ import annotations

import torch


def tensor(x, name: str, *, dim: int | None = None, shape_doc: str = "", floating: bool = True):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if dim is not None and x.dim() != dim:
        raise ValueError(f"{name} must have {dim} dims {shape_doc}, got shape {tuple(x.shape)}")
    return x


def positive_int(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, torch.SymInt):
            return v
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v <= 0:
        raise ValueError(f"{name} must be positive, got {v}")
    return v


def int_pair(v, name: str) -> tuple[int, int]:
    if isinstance(v, torch.Size) or (isinstance(v, (tuple, list)) and len(v) == 2):
        return positive_int(v[0], name), positive_int(v[1], name)
    raise ValueError(f"{name} must be a pair (H, W) of positive ints, got {v!r}")


def grid(n: int, patch_size: int, stride: int) -> int:
    """Patches along one axis of length n (no padding)."""
    return (n - patch_size) // stride + 1
