"""The pure-PyTorch cross_scale_knn and vertex_map against naive loops over the contract."""
import pytest
import torch

from sr_ops import reference
from sr_ops.reference.cross_scale_knn import window_start


def grid(n, p, t):
    return (n - p) // t + 1


def loop_window(i, scale, window, n):
    """Candidate rows (or columns) of query row (column) i, straight from the contract in docs/design.md."""
    if window is None:
        return range(n)
    w = min(window, n)
    start = i // scale - window // 2
    start = 0 if start < 0 else start
    start = n - w if start > n - w else start
    return range(start, start + w)


def loop_knn(query, key, k, p, t, window, scale):
    """Every candidate in the window with its exact distance, sorted on (distance, index)."""
    query, key = query.double(), key.double()
    B, C, H, W = query.shape
    m1, m2 = grid(H, p, t), grid(W, p, t)
    n1, n2 = grid(key.shape[2], p, t), grid(key.shape[3], p, t)
    dist = torch.zeros(B, m1 * m2, k, dtype=torch.float64)
    idx = torch.zeros(B, m1 * m2, k, dtype=torch.int64)
    for b in range(B):
        for i in range(m1):
            for j in range(m2):
                qv = query[b, :, t * i:t * i + p, t * j:t * j + p]
                found = sorted(
                    (float(((qv - key[b, :, t * a:t * a + p, t * c:t * c + p]) ** 2).sum()), a * n2 + c)
                    for a in loop_window(i, scale, window, n1)
                    for c in loop_window(j, scale, window, n2)
                )
                dist[b, i * m2 + j] = torch.tensor([d for d, _ in found[:k]], dtype=torch.float64)
                idx[b, i * m2 + j] = torch.tensor([n for _, n in found[:k]])
    return dist, idx


# (B, C, H, W, Hk, Wk, p, t, k, window, scale)
CASES = [
    (2, 3, 25, 21, 13, 11, 3, 2, 4, 3, 2),  # windows clamped at all four sides
    (1, 2, 17, 15, 9, 9, 2, 1, 1, 5, 2),  # k = 1, stride 1, clamped at all four sides
    (2, 2, 13, 15, 9, 11, 3, 2, 9, 3, 2),  # k = every candidate of the window
    (2, 1, 11, 9, 11, 13, 3, 2, 6, None, 2),  # C = 1, window=None
    (1, 2, 13, 13, 7, 9, 3, 2, 3, 30, 2),  # window larger than the key grid
    (1, 2, 27, 19, 13, 13, 3, 2, 5, 4, 3),  # scale 3, even window
    (1, 3, 40, 31, 13, 11, 3, 2, 4, 2, 3),  # scale 3, windows clamped at the far sides
    (1, 2, 22, 19, 13, 10, 4, 3, 2, 2, 2),  # p=4, t=3
    (1, 2, 9, 9, 9, 9, 3, 2, 1, 1, 2),  # window 1
]


def maps(case, dtype=torch.float64):
    B, C, H, W, Hk, Wk = case[:6]
    return torch.randn(B, C, H, W, dtype=dtype), torch.randn(B, C, Hk, Wk, dtype=dtype)


@pytest.mark.parametrize("chunk_size", [1024, 7])
@pytest.mark.parametrize("case", CASES)
def test_matches_loop(case, chunk_size, seed):
    p, t, k, window, scale = case[6:]
    q, key = maps(case)
    dist, idx = reference.cross_scale_knn(q, key, k, p, t, window, scale, chunk_size=chunk_size)
    want_dist, want_idx = loop_knn(q, key, k, p, t, window, scale)
    assert dist.dtype == torch.float64 and idx.dtype == torch.int64
    torch.testing.assert_close(dist, want_dist)
    assert torch.equal(idx, want_idx)


def test_window_is_clamped_at_all_four_sides():
    # Case 0's grids: query 12x10 patches, key 6x5, window 3 -> starts clamp to 0 and to n - w.
    starts = [window_start(i, 2, 3, 6, 3) for i in range(12)]
    assert starts == [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 3, 3]
    assert [loop_window(i, 2, 3, 6).start for i in range(12)] == starts
    assert window_start(torch.arange(12), 2, 3, 6, 3).tolist() == starts


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float32_and_float64_outputs(dtype, seed):
    q, key = maps((1, 2, 9, 9, 7, 7), dtype)
    dist, idx = reference.cross_scale_knn(q, key, 3, 3, 2, 2, 2)
    assert dist.dtype == dtype and idx.dtype == torch.int64
    assert dist.requires_grad is False and not idx.is_floating_point()
    assert bool((dist[..., 1:] >= dist[..., :-1]).all())


def test_half_input_gives_float32_distances(seed):
    q, key = maps((1, 2, 9, 9, 7, 7), torch.float32)
    dist, idx = reference.cross_scale_knn(q.half(), key.half(), 3, 3, 2, 2, 2)
    want, want_idx = reference.cross_scale_knn(q.half().float(), key.half().float(), 3, 3, 2, 2, 2)
    assert dist.dtype == torch.float32
    torch.testing.assert_close(dist, want)
    assert torch.equal(idx, want_idx)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[3], CASES[5]])
def test_ties_go_to_the_smaller_index(case, dtype, seed):
    # Small integers: many exactly equal distances, exact in float32 too.
    B, C, H, W, Hk, Wk, p, t, k, window, scale = case
    q = torch.randint(0, 2, (B, C, H, W)).to(dtype)
    key = torch.randint(0, 2, (B, C, Hk, Wk)).to(dtype)
    dist, idx = reference.cross_scale_knn(q, key, k, p, t, window, scale)
    want_dist, want_idx = loop_knn(q, key, k, p, t, window, scale)
    assert torch.equal(idx, want_idx)
    torch.testing.assert_close(dist.double(), want_dist)


def test_float32_ranks_on_exact_distances(seed):
    # Patches far from the origin and close to each other: |q|^2 + |c|^2 - 2 q.c cancels
    # to noise in float32, but the ranking must still follow sum((q - c)^2).
    p, t, k, window, scale = CASES[0][6:]
    q, key = (x.float() * 0.01 + 100 for x in maps(CASES[0]))
    dist, idx = reference.cross_scale_knn(q, key, k, p, t, window, scale)
    want_dist, want_idx = loop_knn(q, key, k, p, t, window, scale)
    assert torch.equal(idx, want_idx)
    torch.testing.assert_close(dist.double(), want_dist, rtol=1e-4, atol=0)


def test_identical_key_patches_give_the_first_candidates(seed):
    # A key map of period t: every key patch is the same, so every distance ties and each
    # query gets the first k candidates of its window in row-major order.
    p, t, k, window, scale = 3, 2, 4, 3, 2
    q = torch.randn(1, 2, 25, 21, dtype=torch.float64)
    key = torch.randn(1, 2, 2, 2, dtype=torch.float64).repeat(1, 1, 7, 6)[..., :13, :11]
    dist, idx = reference.cross_scale_knn(q, key, k, p, t, window, scale)
    n2 = grid(11, p, t)
    for qi, (i, j) in enumerate((i, j) for i in range(12) for j in range(10)):
        a0, b0 = loop_window(i, scale, window, 6).start, loop_window(j, scale, window, 5).start
        assert idx[0, qi].tolist() == [a0 * n2 + b0, a0 * n2 + b0 + 1, a0 * n2 + b0 + 2, (a0 + 1) * n2 + b0]
        assert torch.equal(dist[0, qi], dist[0, qi, :1].expand(k))


def test_gradcheck(seed):
    q, key = maps((2, 2, 7, 9, 5, 5))
    q.requires_grad_()
    key.requires_grad_()
    fn = lambda a, b: reference.cross_scale_knn(a, b, 3, 3, 2, 2, 2)[0]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (q, key))


def test_gradient_is_two_q_minus_c(seed):
    p, t = 3, 2
    q, key = maps((2, 2, 11, 9, 7, 9))
    q.requires_grad_()
    key.requires_grad_()
    dist, idx = reference.cross_scale_knn(q, key, 3, p, t, 2, 2)
    g = torch.randn_like(dist)
    gq, gk = torch.autograd.grad(dist, (q, key), g)
    want_q, want_k = torch.zeros_like(q), torch.zeros_like(key)
    m2, n2 = grid(9, p, t), grid(9, p, t)
    for b in range(2):
        for qi in range(dist.shape[1]):
            i, j = divmod(qi, m2)
            for r in range(3):
                a, c = divmod(int(idx[b, qi, r]), n2)
                qs, ks = (b, slice(None), slice(t * i, t * i + p), slice(t * j, t * j + p)), \
                    (b, slice(None), slice(t * a, t * a + p), slice(t * c, t * c + p))
                diff = 2 * g[b, qi, r] * (q[qs] - key[ks]).detach()
                want_q[qs] += diff
                want_k[ks] -= diff
    torch.testing.assert_close(gq, want_q)
    torch.testing.assert_close(gk, want_k)


@pytest.mark.parametrize("key_hw, scale, p, t", [((9, 13), 2, 3, 2), ((8, 7), 3, 2, 1), ((13, 10), 2, 4, 3)])
def test_vertex_map_matches_loop(key_hw, scale, p, t, seed):
    n1, n2 = grid(key_hw[0], p, t), grid(key_hw[1], p, t)
    idx = torch.randint(0, n1 * n2, (2, 7, 3))
    rows, cols = reference.vertex_map(idx, key_hw, scale, p, t)
    assert rows.dtype == cols.dtype == torch.int64 and rows.shape == idx.shape
    for pos, n in enumerate(idx.flatten().tolist()):
        a, b = n // n2, n % n2
        assert (rows.flatten()[pos], cols.flatten()[pos]) == (scale * t * a, scale * t * b)
    rows, cols = reference.vertex_map(torch.tensor([n1 * n2 - 1]), key_hw, scale, p, t)
    assert rows.item() + scale * p <= scale * key_hw[0] and cols.item() + scale * p <= scale * key_hw[1]


Q, K = torch.randn(1, 2, 13, 13), torch.randn(1, 2, 7, 9)  # key grid 3x4


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(k=10, window=3), ValueError, "k must be at most the 9 candidate"),
        (dict(k=13, window=None), ValueError, "at most the 12 candidate.*got k=13"),
        (dict(k=13, window=30), ValueError, "got k=13"),
        (dict(window=0), ValueError, "window must be positive"),
        (dict(window=-2), ValueError, "window must be positive"),
        (dict(window=2.0), TypeError, "window must be an int"),
        (dict(k=0), ValueError, "k must be positive"),
        (dict(stride=0), ValueError, "stride must be positive"),
        (dict(patch_size=8), ValueError, "patch_size must be at most key's"),
        (dict(key=torch.randn(2, 2, 7, 9)), ValueError, "with query's B and C, got shape .2, 2, 7, 9."),
        (dict(key=torch.randn(1, 3, 7, 9)), ValueError, "with query's B and C, got shape .1, 3, 7, 9."),
        (dict(key=torch.randn(1, 2, 7, 9, dtype=torch.float64)), TypeError,
         "query and key must share a dtype, got torch.float32 and torch.float64"),
        (dict(query=torch.randn(2, 13, 13)), ValueError, "query must have 4 dims"),
        (dict(query=torch.ones(1, 2, 13, 13, dtype=torch.int64)), TypeError, "query must be a floating"),
        (dict(chunk_size=0), ValueError, "chunk_size must be positive"),
    ],
)
def test_knn_bad_inputs(kwargs, exc, match):
    args = dict(query=Q, key=K, k=2, patch_size=3, stride=2, window=3, scale=2) | kwargs
    with pytest.raises(exc, match=match):
        reference.cross_scale_knn(**args)


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((torch.tensor([12]), (7, 9), 2), ValueError, r"idx values must lie in \[0, 12\)"),
        ((torch.tensor([-1, 3]), (7, 9), 2), ValueError, "idx values must lie"),
        ((torch.tensor([1.0]), (7, 9), 2), TypeError, "idx must be an integer"),
        ((torch.tensor([1]), (2, 9), 2), ValueError, "patch_size must be at most key_hw's"),
        ((torch.tensor([1]), 7, 2), TypeError, "key_hw must be a pair"),
        ((torch.tensor([1]), (7, 9), 0), ValueError, "scale must be positive"),
    ],
)
def test_vertex_map_bad_inputs(args, exc, match):
    with pytest.raises(exc, match=match):
        reference.vertex_map(*args)
