"""cross_scale_knn at IGNN's sizes: query 1x64x384x384, key 1x64x192x192, k=5, p=3, t=2,
window 30, scale 2 (full), and a quarter of the pixels (quick).

The PyTorch baseline is the way people write it: unfold both maps, distances by matmul
in chunks of queries, mask the window, topk."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

import sr_ops
from sr_ops.bench.cases import Case
from sr_ops.reference.cross_scale_knn import window_mask

K, P, T, WINDOW, S = 5, 3, 2, 30, 2


def pytorch_knn(query, key, chunk=1024):
    q = F.unfold(query, P, stride=T).transpose(1, 2)  # (B, m, D)
    c = F.unfold(key, P, stride=T).transpose(1, 2)  # (B, n, D)
    m2 = (query.shape[-1] - P) // T + 1
    n1, n2 = (key.shape[-2] - P) // T + 1, (key.shape[-1] - P) // T + 1
    c_sq = c.pow(2).sum(-1)
    dists, idxs = [], []
    for s in range(0, q.shape[1], chunk):
        qs = q[:, s:s + chunk]
        d = qs.pow(2).sum(-1, keepdim=True) + c_sq[:, None] - 2 * qs @ c.transpose(1, 2)
        inside = window_mask(torch.arange(s, s + qs.shape[1], device=d.device), m2, n1, n2, S, WINDOW)
        d = d.masked_fill(~inside, float("inf"))
        v, i = d.topk(K, dim=-1, largest=False)
        dists.append(v)
        idxs.append(i)
    return torch.cat(dists, 1), torch.cat(idxs, 1)


def _make(C, H, device):
    g = torch.Generator().manual_seed(0)
    return {"query": torch.randn(1, C, H, H, generator=g).to(device),
            "key": torch.randn(1, C, H // 2, H // 2, generator=g).to(device)}


def _fused(d):
    with torch.no_grad():
        return sr_ops.cross_scale_knn(d["query"], d["key"], K, P, T, WINDOW, S)[0]


def _pytorch(d):
    with torch.no_grad():
        return pytorch_knn(d["query"], d["key"])[0]


def windowed_flops(C, H):
    m = ((H - P) // T + 1) ** 2
    return 2 * m * WINDOW * WINDOW * C * P * P


def cases() -> list[Case]:
    return [
        Case(op="cross_scale_knn", label=f"q 1x64x{H}x{H} k5 w30 s2", quick=quick,
             make=functools.partial(_make, 64, H), impls={"sr_ops": _fused, "pytorch": _pytorch},
             extra={"flops": windowed_flops(64, H)})
        for H, quick in [(192, True), (384, False)]
    ]
