"""AdaPN (adaptive patch normalisation): give each neighbour its query's per-channel statistics."""
from __future__ import annotations

import torch

from sr_ops import _validate as v


def patch_stats(x: torch.Tensor):
    """(..., P, P) -> mean and unbiased variance over the last two dims, each (..., 1, 1)."""
    return x.mean((-2, -1), keepdim=True), x.var((-2, -1), correction=1, keepdim=True)


def _check(neighbors, query, eps):
    for x, name, dims, doc in [(neighbors, "neighbors", 4, "(..., k, C, P, P)"), (query, "query", 3, "(..., C, p, p)")]:
        v.tensor(x, name, min_dims=dims, doc=doc)
        if x.shape[-1] * x.shape[-2] < 2:
            raise ValueError(f"{name} patches must hold at least 2 values (an unbiased variance), "
                             f"got shape {tuple(x.shape)}")
    if neighbors.shape[:-4] != query.shape[:-3] or neighbors.shape[-3] != query.shape[-3]:
        raise ValueError(f"query must be (..., C, p, p) with the leading dims and C of neighbors "
                         f"{tuple(neighbors.shape)}, got {tuple(query.shape)}")
    v.same_device(query, "query", neighbors, "neighbors")
    v.eps(eps)


def adapn(neighbors: torch.Tensor, query: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """neighbors (..., k, C, P, P), query (..., C, p, p) -> (..., k, C, P, P):
    `(z - mean_z) / sqrt(var_z + eps) * sqrt(var_q + eps) + mean_q`, statistics per channel
    (unbiased variance), the query's shared by its k neighbours. Computed in float32 at least."""
    _check(neighbors, query, eps)
    dtype = torch.promote_types(torch.promote_types(neighbors.dtype, query.dtype), torch.float32)
    z = neighbors.to(dtype)
    mean_z, var_z = patch_stats(z)
    mean_q, var_q = patch_stats(query.to(dtype).unsqueeze(-4))  # (..., 1, C, 1, 1)
    out = (z - mean_z) / torch.sqrt(var_z + eps) * torch.sqrt(var_q + eps) + mean_q
    return out.to(neighbors.dtype)
