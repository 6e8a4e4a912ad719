"""cross_scale_knn(window_start=(d, o)): the window of query row i starts at key row
clamp(i // d - o, 0, n1 - w1) (columns likewise) on every backend, as the brute force
says; the default equals (scale, window // 2); bad rules are refused."""
import pytest
import torch

import sr_ops

from _helpers import device_for
from _knn_oracle import brute_knn

# (B, C, H, W, Hk, Wk, k, P, T, window, scale, window_start)
CASES = [
    (1, 2, 21, 19, 9, 8, 3, 3, 1, 4, 3, (2, 4 // 3)),  # IGNN's official rule at x3: (2, window // scale)
    (2, 1, 17, 23, 11, 9, 2, 2, 2, 3, 2, (1, 0)),      # window at i, not centred
    (1, 3, 15, 15, 7, 7, 4, 3, 1, 3, 1, (3, 7)),       # offset beyond the grid: clamped to row 0
    (1, 2, 13, 11, 9, 9, 1, 1, 1, 5, 2, (2, 2)),       # = the default rule
]


def make(case, dev, seed):
    B, C, H, W, Hk, Wk = case[:6]
    g = torch.Generator().manual_seed(seed)
    # small integers: exact distances, so ties are real and must go to the smaller index
    q = torch.randint(-2, 3, (B, C, H, W), generator=g).float().to(dev)
    key = torch.randint(-2, 3, (B, C, Hk, Wk), generator=g).float().to(dev)
    return q, key


@pytest.mark.parametrize("case", CASES)
def test_every_backend_follows_the_rule(backend, case, seed):
    *_, k, P, T, window, scale, rule = case
    q, key = make(case, device_for(backend), seed)
    dist, idx = sr_ops.cross_scale_knn(q, key, k, P, T, window, scale, window_start=rule)
    want_dist, want_idx = brute_knn(q, key, k, P, T, window, scale, window_start=rule)
    assert torch.equal(idx.cpu(), want_idx), f"{backend}: neighbours differ under window_start={rule}"
    torch.testing.assert_close(dist.cpu().double(), want_dist, rtol=1e-6, atol=1e-6)


def test_rule_changes_the_result_and_default_is_centred(seed):
    case = CASES[0]
    *_, k, P, T, window, scale, rule = case
    q, key = make(case, "cpu", seed)
    _, official = sr_ops.cross_scale_knn(q, key, k, P, T, window, scale, window_start=rule)
    _, default = sr_ops.cross_scale_knn(q, key, k, P, T, window, scale)
    _, explicit = sr_ops.cross_scale_knn(q, key, k, P, T, window, scale, window_start=(scale, window // 2))
    assert torch.equal(default, explicit)
    assert not torch.equal(official, default)  # the case really tells the two rules apart


def test_backward_with_a_rule(backend, seed):
    case = CASES[1]
    *_, k, P, T, window, scale, rule = case
    q, key = (t.double().requires_grad_() for t in make(case, device_for(backend), seed))
    if backend == "triton":
        q, key = (t.detach().float().requires_grad_() for t in (q, key))
    dist, _ = sr_ops.cross_scale_knn(q, key, k, P, T, window, scale, window_start=rule)
    dist.sum().backward()
    assert q.grad is not None and key.grad is not None and q.grad.abs().sum() > 0


def test_compiles_with_a_rule(seed):
    q, key = make(CASES[0], "cpu", seed)
    fn = torch.compile(lambda a, b: sr_ops.cross_scale_knn(a, b, 3, 3, 1, 4, 3, window_start=(2, 1)),
                       fullgraph=True)
    got = fn(q, key)
    want = sr_ops.cross_scale_knn(q, key, 3, 3, 1, 4, 3, window_start=(2, 1))
    assert torch.equal(got[1], want[1])


@pytest.mark.parametrize("rule,err", [((0, 1), ValueError), ((2, -1), ValueError), ((2,), TypeError),
                                      ("2,1", TypeError), ((2, 1.5), ValueError)])
def test_bad_rules(rule, err):
    q = torch.rand(1, 1, 9, 9)
    with pytest.raises(err, match="window_start"):
        sr_ops.cross_scale_knn(q, q[..., :5, :5], 2, 3, 1, 3, 2, window_start=rule)
