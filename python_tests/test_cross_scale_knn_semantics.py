"""cross_scale_knn's tie and non-finite contract on every backend, against brute force:
equal exact distances go to the smaller key number, and non-finite distances rank after
every finite one (+inf before NaN)."""
import pytest
import torch

import sr_ops

from _helpers import device_for
from _knn_oracle import assert_matches_brute, brute_knn, semantic_cases

CASES = semantic_cases()


@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_semantics(backend, name, make, seed):
    query, key, k, P, T, window, scale = make(seed)
    dev = device_for(backend)
    dist, idx = sr_ops.cross_scale_knn(query.to(dev), key.to(dev), k, P, T, window, scale)
    assert_matches_brute(dist, idx, query, key, k, P, T, window, scale)


def test_issue_case_returns_the_first_patch(backend):
    # 18 of 284 constant-key fuzz cases went to a larger index on the cpu backend.
    query = torch.randn(1, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    key = torch.full((1, 1, 3, 7), 0.5)
    dev = device_for(backend)
    _, idx = sr_ops.cross_scale_knn(query.to(dev), key.to(dev), 1, 3, 1, None, 1)
    assert idx.item() == 0


@pytest.mark.parametrize("draw", range(12))
def test_constant_key_fuzz(backend, draw):
    g = torch.Generator().manual_seed(1000 + draw)
    r = lambda lo, hi: int(torch.randint(lo, hi + 1, (), generator=g))  # noqa: E731
    P, T, S = r(1, 3), r(1, 3), r(1, 3)
    C, H, W, Hk, Wk = r(1, 4), r(P, 12), r(P, 12), r(P, 9), r(P, 9)
    window = None if r(0, 2) == 0 else r(1, 5)
    n1, n2 = (Hk - P) // T + 1, (Wk - P) // T + 1
    cand = n1 * n2 if window is None else min(window, n1) * min(window, n2)
    k = r(1, min(cand, 6))
    query = torch.randn(1, C, H, W, generator=g)
    key = torch.full((1, C, Hk, Wk), float(torch.randn((), generator=g)))
    dev = device_for(backend)
    dist, idx = sr_ops.cross_scale_knn(query.to(dev), key.to(dev), k, P, T, window, S)
    assert_matches_brute(dist, idx, query, key, k, P, T, window, S)


def test_oracle_sees_a_wrong_tie_order():
    # The checker must be able to fail: swapping two tied neighbours is caught.
    _, make = CASES[1]
    query, key, k, P, T, window, scale = make(0)
    dist, idx = brute_knn(query, key, k, P, T, window, scale)
    idx = idx.clone()
    idx[0, 0, [0, 1]] = idx[0, 0, [1, 0]]
    with pytest.raises(AssertionError, match="indices differ"):
        assert_matches_brute(dist, idx, query, key, k, P, T, window, scale)
