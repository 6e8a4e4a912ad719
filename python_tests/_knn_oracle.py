"""Brute-force cross_scale_knn for the semantics tests: every window candidate measured
directly in float64, ordered finite < +inf < NaN, then by distance, then by key number."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _grid(n, p, t):
    return (n - p) // t + 1


def _start(i, divisor, window, n, offset=None):
    if window is None or window <= 0:
        return 0, n
    w = min(window, n)
    return min(max(i // divisor - (window // 2 if offset is None else offset), 0), n - w), w


def brute_knn(query, key, k, P, T, window, scale, window_start=None):
    """(dist, idx), each (B, m, k): dist float64 (from the float64 patch vectors). The
    window of query row i starts at clamp(i // d - o, 0, n1 - w1), (d, o) = window_start
    or (scale, window // 2)."""
    divisor, offset = (scale, None) if window_start is None else window_start
    q = F.unfold(query.double().cpu(), P, stride=T).transpose(1, 2)
    c = F.unfold(key.double().cpu(), P, stride=T).transpose(1, 2)
    m2 = _grid(query.shape[-1], P, T)
    n1, n2 = _grid(key.shape[-2], P, T), _grid(key.shape[-1], P, T)
    B, m = q.shape[:2]
    dist = torch.empty(B, m, k, dtype=torch.float64)
    idx = torch.empty(B, m, k, dtype=torch.int64)
    for b in range(B):
        for n in range(m):
            a0, w1 = _start(n // m2, divisor, window, n1, offset)
            b0, w2 = _start(n % m2, divisor, window, n2, offset)
            cand = []
            for a in range(a0, a0 + w1):
                for cb in range(b0, b0 + w2):
                    d = float((q[b, n] - c[b, a * n2 + cb]).pow(2).sum())
                    rank = 2 if math.isnan(d) else 1 if math.isinf(d) else 0
                    cand.append((rank, 0.0 if rank == 2 else d, a * n2 + cb, d))
            cand.sort()
            dist[b, n] = torch.tensor([x[3] for x in cand[:k]], dtype=torch.float64)
            idx[b, n] = torch.tensor([x[2] for x in cand[:k]])
    return dist, idx


def _periodic(g, B, C, Hk, Wk, period):
    block = torch.randn(B, C, period, period, generator=g)
    reps = (Hk + period - 1) // period, (Wk + period - 1) // period
    return block.repeat(1, 1, *reps)[..., :Hk, :Wk].contiguous()


def semantic_cases():
    """(name, make(seed) -> (query, key, k, P, T, window, scale)) of adversarial inputs:
    exact ties on constant and periodic key maps, inf and NaN in query or key, k equal to
    the number of candidates."""
    cases = []

    def add(name, fn):
        cases.append((name, fn))

    # The case: a constant key, every candidate ties; the smaller index wins.
    add("constant-issue", lambda s: (torch.randn(1, 1, 3, 3, generator=torch.Generator().manual_seed(0)),
                                     torch.full((1, 1, 3, 7), 0.5), 1, 3, 1, None, 1))
    for n, (C, H, W, Hk, Wk, k, P, T, window, scale) in enumerate([
            (2, 11, 13, 9, 8, 4, 3, 2, 3, 2), (1, 9, 9, 7, 11, 5, 3, 1, None, 1),
            (3, 12, 10, 12, 10, 6, 2, 2, 4, 1), (4, 15, 15, 8, 8, 9, 3, 2, 3, 2)]):
        def const(s, C=C, H=H, W=W, Hk=Hk, Wk=Wk, k=k, P=P, T=T, window=window, scale=scale):
            g = torch.Generator().manual_seed(s)
            value = float(torch.randn((), generator=g))
            return torch.randn(1, C, H, W, generator=g), torch.full((1, C, Hk, Wk), value), k, P, T, window, scale
        add(f"constant-{n}", const)
    for n, (C, H, W, Hk, Wk, k, P, T, window, scale, period) in enumerate([
            (2, 13, 13, 12, 12, 6, 3, 2, 4, 2, 4), (1, 9, 11, 9, 12, 5, 3, 1, None, 1, 3),
            (3, 14, 12, 14, 14, 8, 2, 2, 5, 1, 2)]):
        def periodic(s, C=C, H=H, W=W, Hk=Hk, Wk=Wk, k=k, P=P, T=T, window=window, scale=scale, period=period):
            g = torch.Generator().manual_seed(s)
            return (torch.randn(1, C, H, W, generator=g), _periodic(g, 1, C, Hk, Wk, period), k, P, T, window,
                    scale)
        add(f"periodic-{n}", periodic)

    def cancelling_ties(s):
        # Large values, neighbours 0.5 apart: each query sits exactly halfway between two key
        # pixels (an exact tie), while the expansion's float32 rounding is larger than the
        # distances; ranking by the expansion alone gets about a third of these wrong.
        n = 48
        a = torch.arange(n, dtype=torch.float32)
        key = (4096.0 + 0.5 * a).view(1, 1, 1, n)
        query = (4096.0 + 0.5 * a[1:] - 0.25).view(1, 1, 1, n - 1)
        return query, key, 1, 1, 1, None, 1
    add("cancelling-ties", cancelling_ties)

    def inf_key(s):  # one key pixel +inf: the patches holding it lose to every finite one
        g = torch.Generator().manual_seed(s)
        key = torch.randn(1, 2, 9, 9, generator=g)
        key[0, 1, 4, 4] = float("inf")
        return torch.randn(1, 2, 11, 11, generator=g), key, 4, 3, 2, None, 1
    add("inf-key", inf_key)

    def nonfinite_all(s):  # k = every candidate: finite, then +inf, then NaN
        g = torch.Generator().manual_seed(s)
        key = torch.randn(1, 2, 9, 9, generator=g)
        key[0, 0, 2, 6] = float("inf")
        key[0, 1, 6, 2] = float("nan")
        key[0, 0, 8, 8] = float("-inf")
        return torch.randn(1, 2, 11, 9, generator=g), key, 16, 3, 2, None, 1
    add("nonfinite-key-k-all", nonfinite_all)

    def nonfinite_query(s):  # query patches with NaN / inf: ties among non-finite go by index
        g = torch.Generator().manual_seed(s)
        query = torch.randn(1, 2, 11, 11, generator=g)
        query[0, 0, 3, 3] = float("nan")
        query[0, 1, 8, 5] = float("inf")
        key = torch.randn(1, 2, 9, 9, generator=g)
        key[0, 1, 1, 3] = float("inf")
        return query, key, 5, 3, 2, 3, 2
    add("nonfinite-query", nonfinite_query)

    def k_all(s):  # k = every candidate of the window, with ties from a periodic key
        g = torch.Generator().manual_seed(s)
        return torch.randn(1, 2, 9, 9, generator=g), _periodic(g, 1, 2, 10, 10, 2), 9, 3, 2, 3, 2
    add("k-all-periodic", k_all)
    return cases


def assert_matches_brute(dist, idx, query, key, k, P, T, window, scale):
    want_d, want_i = brute_knn(query, key, k, P, T, window, scale)
    dist, idx = dist.cpu().double(), idx.cpu()
    bad = (idx != want_i).nonzero()
    assert bad.numel() == 0, (f"{len(bad)} of {idx.numel()} indices differ; first at {bad[0].tolist()}: "
                              f"got {idx[tuple(bad[0][:2])].tolist()}, want {want_i[tuple(bad[0][:2])].tolist()}")
    assert torch.equal(dist.isnan(), want_d.isnan()) and torch.equal(dist.isinf(), want_d.isinf())
    fin = want_d.isfinite()
    torch.testing.assert_close(dist[fin], want_d[fin], rtol=1e-5, atol=1e-4)
