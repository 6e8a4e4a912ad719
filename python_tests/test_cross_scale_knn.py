"""cross_scale_knn on every backend against the reference."""
import pytest
import torch
import torch.nn.functional as F

import sr_ops
from sr_ops.reference import cross_scale_knn as ref_knn

from _helpers import device_for

# (B, C, H, W, Hk, Wk, k, P, T, window, scale)
CASES = [
    (2, 3, 21, 17, 11, 9, 5, 3, 2, 4, 2),  # windows clamped at all four borders
    (1, 4, 25, 19, 9, 7, 3, 3, 2, None, 2),  # every key patch
    (1, 2, 13, 13, 7, 7, 4, 3, 1, 30, 2),  # window larger than the key grid
    (1, 3, 27, 24, 10, 9, 5, 3, 2, 3, 3),  # scale 3
    (2, 1, 15, 11, 8, 6, 1, 3, 2, 3, 2),  # k = 1, C = 1
    (1, 2, 17, 15, 11, 11, 9, 3, 2, 3, 2),  # k = every candidate of the window
    (1, 5, 12, 14, 8, 9, 3, 2, 3, 5, 2),  # stride > patch
]


def grid(n, p, t):
    return (n - p) // t + 1


def in_window(idx, H, W, Hk, Wk, P, T, window, scale):
    m1, m2, n1, n2 = grid(H, P, T), grid(W, P, T), grid(Hk, P, T), grid(Wk, P, T)
    q = torch.arange(m1 * m2)
    i, j = (q // m2)[:, None], (q % m2)[:, None]
    w1 = n1 if window is None else min(window, n1)
    w2 = n2 if window is None else min(window, n2)
    half = 0 if window is None else window // 2
    a0 = (i // scale - half).clamp(0, n1 - w1)
    b0 = (j // scale - half).clamp(0, n2 - w2)
    a, b = idx // n2, idx % n2
    return ((a >= a0) & (a < a0 + w1) & (b >= b0) & (b < b0 + w2)).all()


def exact_dist(query, key, idx, P, T):
    q = F.unfold(query.double(), P, stride=T).transpose(1, 2)
    c = F.unfold(key.double(), P, stride=T).transpose(1, 2)
    batch = torch.arange(q.shape[0])[:, None, None]
    return (q.unsqueeze(2) - c[batch, idx]).pow(2).sum(-1)


@pytest.mark.parametrize("case", CASES)
def test_matches_reference(backend, case, seed):
    B, C, H, W, Hk, Wk, k, P, T, window, scale = case
    dev = device_for(backend)
    query, key = torch.randn(B, C, H, W, device=dev), torch.randn(B, C, Hk, Wk, device=dev)
    dist, idx = sr_ops.cross_scale_knn(query, key, k, P, T, window, scale)
    with sr_ops.use_backend("reference"):
        rdist, ridx = ref_knn(query.cpu(), key.cpu(), k, P, T, window, scale)
    dist, idx = dist.cpu(), idx.cpu()
    assert dist.dtype == torch.float32 and idx.dtype == torch.int64
    assert dist.shape == idx.shape == (B, grid(H, P, T) * grid(W, P, T), k)
    torch.testing.assert_close(dist, rdist, rtol=1e-5, atol=1e-4)
    assert (dist[..., 1:] >= dist[..., :-1]).all()
    for b in range(B):
        assert in_window(idx[b], H, W, Hk, Wk, P, T, window, scale)
    torch.testing.assert_close(exact_dist(query.cpu(), key.cpu(), idx, P, T).float(), dist, rtol=1e-5, atol=1e-4)
    # Indices agree except where float rounding reorders near-equal distances.
    assert (idx == ridx).float().mean() > 0.98


def test_ties_go_to_the_smaller_index(backend, seed):
    dev = device_for(backend)
    # Integer-valued maps make every distance exact, and a key built from two
    # repeated 2-pixel blocks makes most distances tie.
    key = torch.randint(0, 3, (1, 2, 2, 2)).float().repeat(1, 1, 6, 6).to(dev)
    query = torch.randint(0, 3, (1, 2, 11, 11)).float().to(dev)
    dist, idx = sr_ops.cross_scale_knn(query, key, 6, 3, 2, 4, 2)
    rdist, ridx = ref_knn(query.cpu(), key.cpu(), 6, 3, 2, 4, 2)
    assert torch.equal(idx.cpu(), ridx)
    assert torch.equal(dist.cpu(), rdist)
    ties = dist[..., 1:] == dist[..., :-1]
    assert ties.any()
    assert (idx[..., 1:][ties] > idx[..., :-1][ties]).all()


def test_non_contiguous_inputs(backend, seed):
    dev = device_for(backend)
    query = torch.randn(1, 13, 15, 3, device=dev).permute(0, 3, 1, 2)
    key = torch.randn(1, 3, 16, 16, device=dev)[..., ::2, 1:9]
    assert not query.is_contiguous() and not key.is_contiguous()
    dist, idx = sr_ops.cross_scale_knn(query, key, 3, 3, 2, 3, 2)
    rdist, _ = ref_knn(query.cpu().contiguous(), key.cpu().contiguous(), 3, 3, 2, 3, 2)
    torch.testing.assert_close(dist.cpu(), rdist, rtol=1e-5, atol=1e-4)


def test_dist_gradient_matches_reference(backend, seed):
    dev = device_for(backend)
    query = torch.randn(2, 3, 11, 9, device=dev, requires_grad=True)
    key = torch.randn(2, 3, 7, 7, device=dev, requires_grad=True)
    dist, idx = sr_ops.cross_scale_knn(query, key, 3, 3, 2, 3, 2)
    g = torch.randn_like(dist)
    gq, gk = torch.autograd.grad(dist, (query, key), g)
    q2, k2 = query.detach().cpu().requires_grad_(), key.detach().cpu().requires_grad_()
    rdist, ridx = ref_knn(q2, k2, 3, 3, 2, 3, 2)
    assert torch.equal(ridx, idx.cpu())
    rq, rk = torch.autograd.grad(rdist, (q2, k2), g.cpu())
    torch.testing.assert_close(gq.cpu(), rq, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gk.cpu(), rk, rtol=1e-4, atol=1e-4)


def test_gradcheck_float64(backend, seed):
    dev = device_for(backend)
    query = torch.randn(1, 2, 9, 7, device=dev, dtype=torch.float64, requires_grad=True)
    key = torch.randn(1, 2, 7, 5, device=dev, dtype=torch.float64, requires_grad=True)
    fn = lambda q, k: sr_ops.cross_scale_knn(q, k, 2, 3, 2, 2, 2)[0]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (query, key), fast_mode=True)


def test_opcheck(backend, seed):
    dev = device_for(backend)
    query = torch.randn(2, 3, 11, 9, device=dev, requires_grad=True)
    key = torch.randn(2, 3, 7, 7, device=dev, requires_grad=True)
    torch.library.opcheck(torch.ops.sr_ops.cross_scale_knn.default, (query, key, 3, 3, 2, 3, 2, -1))
    torch.library.opcheck(torch.ops.sr_ops.cross_scale_knn.default, (query, key, 2, 3, 2, -1, 2, -1))
    torch.library.opcheck(torch.ops.sr_ops.cross_scale_knn.default, (query, key, 3, 3, 2, 3, 2, 1))  # window_start


Q, K = torch.randn(1, 2, 11, 11), torch.randn(1, 2, 7, 7)


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        ((Q, torch.randn(2, 2, 7, 7)), {}, ValueError, "with query's B and C"),
        ((Q, torch.randn(1, 3, 7, 7)), {}, ValueError, "with query's B and C"),
        ((Q, K), {"k": 10, "window": 3}, ValueError, "k must be at most the 9 candidate"),
        ((Q, K), {"window": 0}, ValueError, "window must be positive"),
        ((Q, K), {"patch_size": 9}, ValueError, "patch_size must be at most key's height and width"),
        ((Q[0], K), {}, ValueError, "query must have 4 dims"),
        ((Q, K.double()), {}, TypeError, "share a dtype"),
        ((Q.long(), K.long()), {}, TypeError, "query must be a floating"),
        ((Q, K), {"k": 0}, ValueError, "k must be positive"),
    ],
)
def test_bad_inputs(backend, args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        sr_ops.cross_scale_knn(*args, **kwargs)
