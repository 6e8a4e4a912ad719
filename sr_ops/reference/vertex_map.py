"""vertex_map: key-patch numbers -> top-left pixel of the region they cover once scaled up."""
from __future__ import annotations

import torch

from sr_ops import _validate as v


def key_grid(key_hw, patch_size: int, stride: int) -> tuple[int, int]:
    """(n1, n2): the key patch grid of a key map of size key_hw = (Hk, Wk)."""
    Hk, Wk = v.int_pair(key_hw, "key_hw", "(Hk, Wk)")
    v.positive_int(patch_size, "patch_size")
    v.positive_int(stride, "stride")
    v.patch_fits(patch_size, (Hk, Wk), "key_hw")
    return v.grid(Hk, patch_size, stride), v.grid(Wk, patch_size, stride)


def check_indices(idx, n: int) -> torch.Tensor:
    """Checks that idx is an integer tensor with values in [0, n)."""
    v.tensor(idx, "idx", kind="int")
    v.index_range(idx, n, "idx", "the key patches")
    return idx


def vertex_map(idx: torch.Tensor, key_hw, scale: int, patch_size: int = 3, stride: int = 2):
    """idx (...) key-patch numbers of a key map of size key_hw = (Hk, Wk) -> (rows, cols),
    each (...) int64: the top-left pixel, in the full-resolution map, of the
    (scale*p) x (scale*p) region of key patch idx: scale*stride*(idx // n2, idx % n2)."""
    n1, n2 = key_grid(key_hw, patch_size, stride)
    v.positive_int(scale, "scale")
    idx = check_indices(idx, n1 * n2).long()
    step = scale * stride
    return step * (idx // n2), step * (idx % n2)
