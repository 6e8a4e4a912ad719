"""cross_scale_knn benchmark cases.

- Windowed (IGNN's setting): query 1x64x384x384, key 1x64x192x192, k=5, p=3, t=2, window
  30, scale 2 (full), and a quarter of the pixels (quick). Useful work 2*m*w^2*C*p^2.
- Global (`window=None`): query 1x64x128x128, key 1x64x64x64 (3,969 x 961 patch vectors of
  576), k=5, beside FAISS `IndexFlatL2` on the same vectors (its unfold is not timed; the
  row is skipped when faiss-cpu is absent). Useful work 2*m*n*C*p^2.

The PyTorch baseline is the way people write it: unfold both maps, distances by matmul in
chunks of queries, mask the window, topk."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

import sr_ops
from sr_ops.bench.cases import Case
from sr_ops.reference.cross_scale_knn import window_mask

K, P, T, WINDOW, S = 5, 3, 2, 30, 2


def pytorch_knn(query, key, window=WINDOW, chunk=1024):
    q = F.unfold(query, P, stride=T).transpose(1, 2)  # (B, m, D)
    c = F.unfold(key, P, stride=T).transpose(1, 2)  # (B, n, D)
    m2 = (query.shape[-1] - P) // T + 1
    n1, n2 = (key.shape[-2] - P) // T + 1, (key.shape[-1] - P) // T + 1
    c_sq = c.pow(2).sum(-1)
    dists, idxs = [], []
    for s in range(0, q.shape[1], chunk):
        qs = q[:, s:s + chunk]
        d = qs.pow(2).sum(-1, keepdim=True) + c_sq[:, None] - 2 * qs @ c.transpose(1, 2)
        if window is not None:
            inside = window_mask(torch.arange(s, s + qs.shape[1], device=d.device), m2, n1, n2, S, window)
            d = d.masked_fill(~inside, float("inf"))
        v, i = d.topk(K, dim=-1, largest=False)
        dists.append(v)
        idxs.append(i)
    return torch.cat(dists, 1), torch.cat(idxs, 1)


def _make(C, H, device, Hk=None):
    g = torch.Generator().manual_seed(0)
    Hk = Hk or H // 2
    return {"query": torch.randn(1, C, H, H, generator=g).to(device),
            "key": torch.randn(1, C, Hk, Hk, generator=g).to(device)}


def _fused(d, window=WINDOW):
    with torch.no_grad():
        return sr_ops.cross_scale_knn(d["query"], d["key"], K, P, T, window, S)[0]


def _pytorch(d, window=WINDOW):
    with torch.no_grad():
        return pytorch_knn(d["query"], d["key"], window)[0]


def faiss_missing() -> str | None:
    """Why the FAISS row cannot run here, or None."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return "faiss-cpu is not installed (pip install faiss-cpu; a benchmark-only dependency)"
    return None


def _make_global(device):
    d = _make(64, 128, device, Hk=64)
    if faiss_missing() is None and device.type == "cpu":
        import faiss

        # The patch vectors and the index are built here, outside the timed call: FAISS is
        # given the unfold for free.
        d["q_vec"] = F.unfold(d["query"], P, stride=T)[0].T.contiguous().numpy()
        d["index"] = faiss.IndexFlatL2(d["q_vec"].shape[1])
        d["index"].add(F.unfold(d["key"], P, stride=T)[0].T.contiguous().numpy())
    return d


def _faiss(d):
    import faiss

    faiss.omp_set_num_threads(torch.get_num_threads())
    dist, _ = d["index"].search(d["q_vec"], K)
    return torch.from_numpy(dist)[None]


def windowed_flops(C, H):
    m = ((H - P) // T + 1) ** 2
    return 2 * m * WINDOW * WINDOW * C * P * P


def global_flops(C, H, Hk):
    m, n = ((H - P) // T + 1) ** 2, ((Hk - P) // T + 1) ** 2
    return 2 * m * n * C * P * P


def cases() -> list[Case]:
    windowed = [
        Case(op="cross_scale_knn", label=f"q 1x64x{H}x{H} k5 w30 s2", quick=quick,
             make=functools.partial(_make, 64, H), impls={"sr_ops": _fused, "pytorch": _pytorch},
             extra={"flops": windowed_flops(64, H)})
        for H, quick in [(192, True), (384, False)]
    ]
    reason = faiss_missing()
    impls = {"sr_ops": functools.partial(_fused, window=None), "pytorch": functools.partial(_pytorch, window=None)}
    if reason is None:
        impls["faiss"] = _faiss
    glob = Case(op="cross_scale_knn", label="global q 1x64x128x128 key 64x64 k5", quick=False, make=_make_global,
                impls=impls, extra={"flops": global_flops(64, 128, 64),
                                    "skipped": {} if reason is None else {"faiss": reason}})
    return windowed + [glob]
