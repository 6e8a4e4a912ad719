"""vertex_map: key-patch numbers -> top-left pixel of the region they cover once scaled up."""
from __future__ import annotations

import torch

from sr_ops.reference.cross_scale_knn import grid, positive_int


def key_grid(key_hw, patch_size: int, stride: int) -> tuple[int, int]:
    """(n1, n2): the key patch grid of a key map of size key_hw = (Hk, Wk)."""
    if not (isinstance(key_hw, torch.Size) or (isinstance(key_hw, (tuple, list)) and len(key_hw) == 2)):
        raise ValueError(f"key_hw must be a pair (Hk, Wk) of positive ints, got {key_hw!r}")
    Hk, Wk = positive_int(key_hw[0], "key_hw"), positive_int(key_hw[1], "key_hw")
    positive_int(patch_size, "patch_size")
    positive_int(stride, "stride")
    if patch_size > min(Hk, Wk):
        raise ValueError(f"patch_size={patch_size} is larger than key_hw ({Hk}, {Wk})")
    return grid(Hk, patch_size, stride), grid(Wk, patch_size, stride)


def check_indices(idx, n: int) -> torch.Tensor:
    """Checks that idx is an integer tensor with values in [0, n)."""
    if not isinstance(idx, torch.Tensor):
        raise TypeError(f"idx must be a torch.Tensor, got {type(idx).__name__}")
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        raise TypeError(f"idx must be an integer tensor, got {idx.dtype}")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise ValueError(f"idx must lie in [0, {n}) (the key patches), got values in "
                         f"[{int(idx.min())}, {int(idx.max())}]")
    return idx


def vertex_map(idx: torch.Tensor, key_hw, scale: int, patch_size: int = 3, stride: int = 2):
    """idx (...) key-patch numbers of a key map of size key_hw = (Hk, Wk) -> (rows, cols),
    each (...) int64: the top-left pixel, in the full-resolution map, of the
    (scale*p) x (scale*p) region of key patch idx: scale*stride*(idx // n2, idx % n2)."""
    n1, n2 = key_grid(key_hw, patch_size, stride)
    positive_int(scale, "scale")
    idx = check_indices(idx, n1 * n2).long()
    step = scale * stride
    return step * (idx // n2), step * (idx % n2)
