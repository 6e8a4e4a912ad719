"""The pure-PyTorch adapn and graph_aggregate against naive loops over the contract."""
import math

import pytest
import torch

from sr_ops import reference


def grid(n, p, t):
    return (n - p) // t + 1


def loop_stats(x):
    """Mean and unbiased variance of a 2-D patch, summed by hand."""
    values = x.flatten().tolist()
    mean = sum(values) / len(values)
    return mean, sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def loop_adapn_one(z, q, eps):
    """z (C, P, P) against q (C, p, p), channel by channel."""
    out = torch.empty_like(z)
    for ch in range(z.shape[0]):
        mz, vz = loop_stats(z[ch])
        mq, vq = loop_stats(q[ch])
        out[ch] = (z[ch] - mz) / math.sqrt(vz + eps) * math.sqrt(vq + eps) + mq
    return out


def loop_adapn(neighbors, query, eps):
    lead, (k, C, P, _) = neighbors.shape[:-4], neighbors.shape[-4:]
    z = neighbors.reshape(-1, k, C, P, P)
    q = query.reshape(z.shape[0], C, *query.shape[-2:])
    out = torch.empty_like(z)
    for n in range(z.shape[0]):
        for r in range(k):
            out[n, r] = loop_adapn_one(z[n, r], q[n], eps)
    return out.reshape(*lead, k, C, P, P)


def loop_graph(feat, idx, query_feat, key_hw, s, p, t, weights, adapn, eps=1e-5):
    """Region of feat at the key patch's scaled-up corner (zeros where it overhangs feat),
    AdaPN against the query patch, placed at (s*t*i, s*t*j) of an (sH, sW) map, overlaps
    averaged; then the weighted sum."""
    B, C, H, W = feat.shape
    m2, n2 = grid(W, p, t), grid(key_hw[1], p, t)
    k = idx.shape[2]
    out = torch.zeros(B, k, C, s * H, s * W, dtype=torch.float64)
    for b in range(B):
        for r in range(k):
            total = torch.zeros(C, s * H, s * W, dtype=torch.float64)
            count = torch.zeros(s * H, s * W, dtype=torch.float64)
            for q in range(idx.shape[1]):
                i, j = divmod(q, m2)
                a, c = divmod(int(idx[b, q, r]), n2)
                region = torch.zeros(C, s * p, s * p, dtype=feat.dtype)
                inside = feat[b, :, s * t * a:s * t * a + s * p, s * t * c:s * t * c + s * p]
                region[:, :inside.shape[1], :inside.shape[2]] = inside
                if adapn:
                    region = loop_adapn_one(region, query_feat[b, :, t * i:t * i + p, t * j:t * j + p], eps)
                total[:, s * t * i:s * t * i + s * p, s * t * j:s * t * j + s * p] += region
                count[s * t * i:s * t * i + s * p, s * t * j:s * t * j + s * p] += 1
            out[b, r] = torch.where(count > 0, total / count.clamp(min=1), torch.zeros(()))
    if weights is None:
        return out
    return (weights[:, :, None] * out).sum(1)


@pytest.mark.parametrize("eps", [1e-5, 0.3])
@pytest.mark.parametrize(
    "nshape, qshape",
    [((2, 5, 3, 2, 6, 6), (2, 5, 2, 3, 3)), ((4, 1, 4, 4), (1, 2, 2)), ((3, 3, 9, 9), (3, 3, 3))],
)
def test_adapn_matches_loop(nshape, qshape, eps, seed):
    z = torch.randn(nshape, dtype=torch.float64) * 2 + 1
    q = torch.randn(qshape, dtype=torch.float64) * 0.5 - 3
    out = reference.adapn(z, q, eps)
    torch.testing.assert_close(out, loop_adapn(z, q, eps))
    # The statistics really are the query's: mean exact, variance up to eps.
    torch.testing.assert_close(out.mean((-2, -1)), q.unsqueeze(-4).mean((-2, -1)).expand(out.shape[:-2]))


def test_adapn_gradcheck(seed):
    z = torch.randn(2, 3, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    q = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(reference.adapn, (z, q))


def test_adapn_half_keeps_dtype(seed):
    z, q = torch.randn(3, 2, 6, 6), torch.randn(2, 3, 3)
    out = reference.adapn(z.bfloat16(), q.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference.adapn(z.bfloat16().float(), q.bfloat16().float()),
                               rtol=1e-2, atol=1e-2)


# (B, C, H, W, Hk, Wk, p, t, k, s)
CASES = [
    (2, 3, 13, 11, 6, 5, 3, 2, 3, 2),
    (1, 2, 15, 13, 5, 4, 3, 2, 2, 3),  # scale 3
    (1, 1, 10, 9, 5, 4, 3, 2, 4, 2),  # C = 1; (H - p) % t != 0: the last HR rows stay 0
    (2, 2, 9, 9, 4, 4, 2, 1, 3, 2),  # p = 2, stride 1
    (1, 2, 13, 19, 4, 6, 3, 1, 2, 3),  # scale 3, stride 1, k covers repeated neighbours
    (1, 2, 13, 11, 7, 7, 3, 2, 2, 2),  # the last key row's/column's regions overhang feat by 1 and 3
    (1, 2, 13, 14, 7, 7, 3, 2, 3, 3),  # scale 3: they overhang by 8 and 7 of their 9 rows/columns
]


def inputs(case, weighted, dtype=torch.float64):
    B, C, H, W, Hk, Wk, p, t, k, s = case
    n = grid(Hk, p, t) * grid(Wk, p, t)
    feat = torch.randn(B, C, H, W, dtype=dtype)
    query_feat = torch.randn(B, C, H, W, dtype=dtype)
    idx = torch.randint(0, n, (B, grid(H, p, t) * grid(W, p, t), k))
    weights = torch.rand(B, k, s * H, s * W, dtype=dtype) if weighted else None
    return feat, idx, query_feat, weights


@pytest.mark.parametrize("adapn", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_graph_aggregate_matches_loop(case, weighted, adapn, seed):
    B, C, H, W, Hk, Wk, p, t, k, s = case
    feat, idx, query_feat, weights = inputs(case, weighted)
    out = reference.graph_aggregate(feat, idx, query_feat, (Hk, Wk), s, p, t, weights=weights, adapn=adapn)
    want = loop_graph(feat, idx, query_feat, (Hk, Wk), s, p, t, weights, adapn)
    assert out.shape == ((B, C, s * H, s * W) if weighted else (B, k, C, s * H, s * W))
    torch.testing.assert_close(out, want)


def test_graph_aggregate_uncovered_border_is_zero(seed):
    feat, idx, query_feat, _ = inputs(CASES[2], False)
    out = reference.graph_aggregate(feat, idx, query_feat, (5, 4), 2, 3, 2)
    assert out[..., 18:, :].abs().max() == 0  # HR rows 18, 19: no 6x6 patch at stride 4 reaches them
    assert out[..., :18, :16].abs().min() > 0


def test_graph_aggregate_after_knn(seed):
    # The indices come from cross_scale_knn on a map and its 2x average-pooled copy.
    query = torch.randn(2, 3, 13, 17, dtype=torch.float64)
    key = torch.nn.functional.avg_pool2d(query, 2)  # (6, 8)
    _, idx = reference.cross_scale_knn(query, key, k=3, window=2)
    weights = torch.rand(2, 3, 26, 34, dtype=torch.float64)
    out = reference.graph_aggregate(query, idx, query, key.shape[-2:], 2, weights=weights)
    torch.testing.assert_close(out, loop_graph(query, idx, query, key.shape[-2:], 2, 3, 2, weights, True))


@pytest.mark.parametrize("adapn", [True, False])
def test_graph_aggregate_gradcheck(adapn, seed):
    feat, idx, query_feat, weights = inputs((1, 2, 6, 6, 3, 3, 2, 1, 2, 2), True)
    args = [x.requires_grad_() for x in (feat, query_feat, weights)]

    def fn(f, qf, w):
        return reference.graph_aggregate(f, idx, qf, (3, 3), 2, 2, 1, weights=w, adapn=adapn)

    assert torch.autograd.gradcheck(fn, args, fast_mode=True)
    unweighted = lambda f, qf: reference.graph_aggregate(f, idx, qf, (3, 3), 2, 2, 1, adapn=adapn)  # noqa: E731
    assert torch.autograd.gradcheck(unweighted, args[:2], fast_mode=True)


def test_graph_aggregate_float32_and_half(seed):
    feat, idx, query_feat, weights = inputs(CASES[0], True, torch.float32)
    out = reference.graph_aggregate(feat, idx, query_feat, (6, 5), 2, weights=weights)
    assert out.dtype == torch.float32
    want = loop_graph(feat.double(), idx, query_feat.double(), (6, 5), 2, 3, 2, weights.double(), True)
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)
    half = reference.graph_aggregate(feat.bfloat16(), idx, query_feat.bfloat16(), (6, 5), 2, weights=weights.bfloat16())
    assert half.dtype == torch.bfloat16


F, QF = torch.randn(1, 2, 13, 11), torch.randn(1, 2, 13, 11)  # query grid 6x5 = 30; key (6, 5): grid 2x2
IDX = torch.zeros(1, 30, 2, dtype=torch.int64)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(idx=torch.full((1, 30, 2), 4)), ValueError, r"idx values must lie in \[0, 4\)"),
        (dict(idx=torch.full((1, 30, 2), -1)), ValueError, "idx values must lie"),
        (dict(idx=torch.zeros(2, 30, 2, dtype=torch.int64)), ValueError, "idx must be .B=1"),
        (dict(idx=torch.zeros(1, 29, 2, dtype=torch.int64)), ValueError, "idx must be .B=1, m=30"),
        (dict(idx=torch.zeros(1, 30, 0, dtype=torch.int64)), ValueError, "idx must be"),
        (dict(idx=torch.zeros(1, 30, 2)), TypeError, "idx must be an integer"),
        (dict(key_hw=(11, 5)), ValueError, r"key_hw \(11, 5\) at scale=2 must put every neighbour region's start "
                                          r"inside feat \(13, 11\), got the last at \(16, 4\)"),
        (dict(scale=6), ValueError, r"inside feat \(13, 11\), got the last at \(12, 12\)"),
        (dict(key_hw=(2, 5)), ValueError, "patch_size must be at most key_hw's height and width"),
        (dict(key_hw=6), TypeError, "key_hw must be a pair"),
        (dict(query_feat=torch.randn(1, 3, 13, 11)), ValueError,
         "query_feat must have feat's shape .1, 2, 13, 11., got .1, 3, 13, 11."),
        (dict(query_feat=torch.randn(2, 2, 13, 11)), ValueError,
         "query_feat must have feat's shape .1, 2, 13, 11., got .2, 2, 13, 11."),
        (dict(feat=torch.randn(2, 13, 11)), ValueError, "feat must have 4 dims"),
        (dict(weights=torch.rand(1, 3, 26, 22)), ValueError,
         r"weights must have shape \(B, k, sH, sW\) = \(1, 2, 26, 22\)"),
        (dict(weights=torch.rand(1, 2, 13, 11)), ValueError, "weights must have shape"),
        (dict(stride=0), ValueError, "stride must be positive"),
        (dict(scale=0), ValueError, "scale must be positive"),
    ],
)
def test_graph_aggregate_bad_inputs(kwargs, exc, match):
    args = dict(feat=F, idx=IDX, query_feat=QF, key_hw=(6, 5), scale=2) | kwargs
    with pytest.raises(exc, match=match):
        reference.graph_aggregate(**args)


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((torch.randn(3, 2, 6, 6), torch.randn(3, 3, 3)), ValueError, "query must be .*, got .3, 3, 3."),
        ((torch.randn(4, 3, 2, 6, 6), torch.randn(3, 2, 3, 3)), ValueError, "leading dims"),
        ((torch.randn(3, 2, 1, 1), torch.randn(2, 3, 3)), ValueError, "neighbors patches must hold at least 2"),
        ((torch.randn(3, 2, 6, 6), torch.randn(2, 1, 1)), ValueError, "query patches must hold at least 2"),
        ((torch.randn(2, 6, 6), torch.randn(2, 3, 3)), ValueError, "neighbors must have at least 4 dims"),
        ((torch.randn(3, 2, 6, 6), torch.randn(2, 3, 3), -1.0), ValueError, "eps must be"),
        ((torch.ones(3, 2, 6, 6, dtype=torch.int64), torch.randn(2, 3, 3)), TypeError, "neighbors must be a float"),
    ],
)
def test_adapn_bad_inputs(args, exc, match):
    with pytest.raises(exc, match=match):
        reference.adapn(*args)
