"""vertex_map: key-patch numbers -> top-left pixel of the region they cover once scaled up."""
from __future__ import annotations

import torch

from sr_ops import _validate as v
from sr_ops import reference
from sr_ops.backends import BackendTable, lazy
from sr_ops.reference.vertex_map import check_indices, key_grid


def _cpp_fwd(idx, key_hw, scale, patch_size, stride):
    return torch.ops.sr_ops._vertex_map_fwd(idx, key_hw[0], key_hw[1], scale, patch_size, stride)


_forward = BackendTable("vertex_map", reference=reference.vertex_map, cpu=_cpp_fwd, cuda=_cpp_fwd,
                        triton=lazy("sr_ops.triton.vertex_map", "vertex_map_fwd"))


def _check(idx, key_hw, scale, patch_size, stride) -> int:
    """Everything but idx's values (a fake tensor has none); returns the number of key patches."""
    v.tensor(idx, "idx", kind="int")
    n1, n2 = key_grid(key_hw, patch_size, stride)
    v.positive_int(scale, "scale")
    # Python ints are exact; the kernels compute in int64.
    if n1 * n2 >= 2**63:
        raise ValueError(f"key_hw {tuple(key_hw)} gives a {n1}x{n2} key grid: more patches than int64 can number")
    if scale * stride * (max(n1, n2) - 1) >= 2**63:
        raise ValueError(f"scale={scale} * stride={stride} * the key grid ({n1}x{n2}) overflows int64 coordinates")
    return n1 * n2


@torch.library.custom_op("sr_ops::vertex_map", mutates_args=())
def _vertex_map_op(idx: torch.Tensor, key_hw: list[int], scale: int, patch_size: int,
                   stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    # The value check lives here, not in the public function, so that torch.compile
    # traces through the op without a data-dependent graph break.
    check_indices(idx, _check(idx, key_hw, scale, patch_size, stride))
    return _forward(idx.device, idx.long().contiguous(), key_hw, scale, patch_size, stride)


@_vertex_map_op.register_fake
def _(idx, key_hw, scale, patch_size, stride):
    _check(idx, key_hw, scale, patch_size, stride)
    return idx.new_empty(idx.shape, dtype=torch.int64), idx.new_empty(idx.shape, dtype=torch.int64)


def vertex_map(idx: torch.Tensor, key_hw, scale: int, patch_size: int = 3, stride: int = 2):
    """Key-patch numbers -> the top-left pixel of their scaled-up region.

    Args:
        idx: integer tensor of any shape, e.g. (B, m, k) from ``cross_scale_knn``: flat
            numbers ``a*n2 + b`` of patches on the p×p, stride-t grid of a key map of size
            ``key_hw``; every value must lie in ``[0, n1*n2)``.
        key_hw: (Hk, Wk); the key grid is ``n1 = (Hk - p)//stride + 1`` by
            ``n2 = (Wk - p)//stride + 1``.
        scale: s, the factor between the key map and the full-resolution map.

    Returns:
        (rows, cols): int64 tensors shaped like idx, ``s*stride*(idx // n2)`` and
        ``s*stride*(idx % n2)``: the corner, in the full-resolution map, of the
        (s·p)×(s·p) region key patch idx covers. Not differentiable (integer outputs).
    """
    _check(idx, key_hw, scale, patch_size, stride)
    return _vertex_map_op(idx.long(), [int(key_hw[0]), int(key_hw[1])], scale, patch_size, stride)
