"""graph_aggregate (IGNN's GraphAgg data path) composed from the reference pieces:
vertex_map -> gather the s*p regions -> AdaPN -> patch2img."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sr_ops import _validate as v
from sr_ops.reference.adapn import adapn as adapn_patches
from sr_ops.reference.patch2img import patch2img
from sr_ops.reference.vertex_map import key_grid, vertex_map


def _check(feat, idx, query_feat, key_hw, scale, patch_size, stride, weights):
    v.tensor(feat, "feat", dims=4, doc="(B, C, H, W)")
    v.tensor(query_feat, "query_feat", dims=4, doc="(B, C, H, W)")
    v.positive_int(scale, "scale")
    n1, n2 = key_grid(key_hw, patch_size, stride)  # checks key_hw, patch_size, stride
    B, C, H, W = feat.shape
    v.shape_like(query_feat, "query_feat", feat.shape, "feat")
    v.same_device(query_feat, "query_feat", feat, "feat")
    last = (scale * stride * (n1 - 1), scale * stride * (n2 - 1))  # the last region's top-left
    if last[0] >= H or last[1] >= W:
        raise ValueError(f"key_hw {tuple(key_hw)} at scale={scale} must put every neighbour region's start inside "
                         f"feat {(H, W)}, got the last at {last}")
    v.patch_fits(patch_size, (H, W), "feat")
    m = v.grid(H, patch_size, stride) * v.grid(W, patch_size, stride)
    v.tensor(idx, "idx", kind="int")
    if idx.dim() != 3 or idx.shape[0] != B or idx.shape[1] != m or idx.shape[2] == 0:
        raise ValueError(f"idx must be (B={B}, m={m}, k>0) for feat {tuple(feat.shape)}, got shape {tuple(idx.shape)}")
    if weights is not None:
        k = idx.shape[2]
        v.tensor(weights, "weights")
        v.shape(weights, "weights", (B, k, scale * H, scale * W), "(B, k, sH, sW)")
        v.same_device(weights, "weights", feat, "feat")


def graph_aggregate(feat: torch.Tensor, idx: torch.Tensor, query_feat: torch.Tensor, key_hw, scale: int,
                    patch_size: int = 3, stride: int = 2, weights: torch.Tensor | None = None,
                    adapn: bool = True, eps: float = 1e-5) -> torch.Tensor:
    """feat, query_feat (B, C, H, W); idx (B, m, k) key-patch numbers of a key map of size
    key_hw = (Hk, Wk); m the p x p / stride t query grid of (H, W).

    Neighbour r of query q = (i, j) is the (s*p)^2 region of feat at vertex_map(idx[q, r]),
    normalised by AdaPN against query_feat's p x p patch at (t*i, t*j) if `adapn`, and put at
    (s*t*i, s*t*j) of an (s*H, s*W) map, overlaps averaged (patch2img). A region may
    overhang feat's bottom/right border (every region starts inside it): the overhang
    reads as 0, in AdaPN's statistics too, as in IGNN's zero-padded maps. The HR grid (patch s*p,
    stride s*t) always has m1 x m2 patches since s(H - p) // (s*t) == (H - p) // t; when
    (H - p) % t != 0 the last rows/columns it leaves uncovered are 0.
    Returns (B, k, C, sH, sW), or with weights (B, k, sH, sW) the sum over r of
    weights[:, r] * map r, (B, C, sH, sW).
    """
    _check(feat, idx, query_feat, key_hw, scale, patch_size, stride, weights)
    B, C, H, W = feat.shape
    k = idx.shape[2]
    p, t, s = patch_size, stride, scale
    P, T = s * p, s * t
    dtype = torch.promote_types(feat.dtype, torch.float32)

    # Every (s*p)^2 region at (s*t*a, s*t*b): unfold with patch s*p, stride s*t; the region
    # of key patch (a, b) is column a * L2 + b of it. Zeros below/right of feat supply the
    # overhang of the last key rows/columns.
    n1, n2 = key_grid(key_hw, p, t)
    Hp, Wp = max(H, T * (n1 - 1) + P), max(W, T * (n2 - 1) + P)
    padded = F.pad(feat.to(dtype), (0, Wp - W, 0, Hp - H))
    regions = F.unfold(padded, P, stride=T).transpose(1, 2)  # (B, L1*L2, C*P*P)
    L2 = v.grid(Wp, P, T)
    rows, cols = vertex_map(idx, key_hw, s, p, t)
    column = (rows // T) * L2 + cols // T  # (B, m, k)
    batch = torch.arange(B, device=feat.device)[:, None, None]
    m = idx.shape[1]
    neighbors = regions[batch, column].reshape(B, m, k, C, P, P)

    if adapn:
        query = F.unfold(query_feat.to(dtype), p, stride=t).transpose(1, 2).reshape(B, m, C, p, p)
        neighbors = adapn_patches(neighbors, query, eps)

    per_neighbor = neighbors.transpose(1, 2).reshape(B * k, m, C, P, P)
    folded = patch2img(per_neighbor, (s * H, s * W), P, T).reshape(B, k, C, s * H, s * W)
    if weights is None:
        return folded.to(feat.dtype)
    return (weights.to(dtype)[:, :, None] * folded).sum(1).to(feat.dtype)
