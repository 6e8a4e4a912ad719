"""Gradient of cross_scale_knn's distances, the pure-PyTorch way (unfold, gather, fold)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sr_ops.reference.cross_scale_knn import check_backward


def cross_scale_knn_backward(grad_dist: torch.Tensor, idx: torch.Tensor, query: torch.Tensor,
                             key: torch.Tensor, patch_size: int = 3, stride: int = 2):
    """dist[b, q, r] = ||Q_q - K_idx||^2, so d/dQ_q = 2 (Q_q - K_idx) and d/dK_idx = -2 (...),
    scattered back over the patch pixels (overlapping patches add up).

    grad_dist, idx: (B, m, k); query (B, C, H, W); key (B, C, Hk, Wk) -> (grad_query, grad_key)."""
    check_backward(grad_dist, idx, query, key, patch_size, stride)
    P, T = patch_size, stride
    Q = F.unfold(query, P, stride=T)  # (B, D, m)
    K = F.unfold(key, P, stride=T)  # (B, D, n)
    B, D, m = Q.shape
    k = idx.shape[-1]
    flat = idx.reshape(B, 1, m * k).expand(B, D, m * k)
    neighbours = K.gather(2, flat).reshape(B, D, m, k)
    diff = 2 * grad_dist.to(Q.dtype).unsqueeze(1) * (Q.unsqueeze(-1) - neighbours)  # (B, D, m, k)
    grad_q = F.fold(diff.sum(-1), query.shape[-2:], P, stride=T)
    grad_k_cols = torch.zeros_like(K).scatter_add_(2, flat, -diff.reshape(B, D, m * k))
    grad_k = F.fold(grad_k_cols, key.shape[-2:], P, stride=T)
    return grad_q, grad_k
