"""The CUDA backwards of cross_scale_knn and graph_aggregate sum in a fixed order (gathers
through an inverse index built by a stable sort, no atomics): bit-identical under the
simulator's forward and reverse thread orders, run after run, on inputs where many queries
choose the same key patches (long sums whose float result depends on their order, which
atomics made depend on the threads' order)."""
from __future__ import annotations

import os

import pytest
import torch

from _build import ops as sim_ops

SELECTED = os.environ.get("SR_SIM_OPS", "").split()


def _wanted(stem):
    return pytest.mark.skipif(bool(SELECTED) and stem not in SELECTED, reason=f"SR_SIM_OPS leaves {stem} out")


@pytest.fixture(scope="module")
def sim():
    return sim_ops()


def _crowded_idx(B, m, k, n, g):
    idx = torch.randint(0, n, (B, m, k), generator=g)
    crowd = torch.rand(B, m, k, generator=g) < 2 / 3
    return torch.where(crowd, torch.randint(0, 3, (B, m, k), generator=g), idx)


def _runs(sim, op, args):
    outs = []
    for schedule in (0, 1, 0, 1):  # forward, reverse, forward, reverse
        sim._sim_set_schedule(schedule)
        outs.append(getattr(sim, op)(*args))
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            assert torch.equal(a, b), f"{int((a != b).sum())} of {a.numel()} elements differ between runs"
    return outs[0]


@_wanted("cross_scale_knn_backward")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_knn_backward_is_order_independent(sim, dtype):
    g = torch.Generator().manual_seed(3)
    B, C, H, W, Hk, Wk, k, P, T = 2, 2, 12, 11, 7, 6, 4, 3, 1
    q = (torch.randn(B, C, H, W, generator=g, dtype=torch.float64) * 100).to(dtype)
    key = torch.randn(B, C, Hk, Wk, generator=g, dtype=torch.float64).to(dtype)
    m, n = (H - P + 1) * (W - P + 1), (Hk - P + 1) * (Wk - P + 1)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    args = (torch.randn(B, m, k, generator=g, dtype=torch.float64).to(acc), _crowded_idx(B, m, k, n, g), q, key, P, T)
    got = _runs(sim, "_cross_scale_knn_bwd", args)
    want = torch.ops.sr_ops._cross_scale_knn_bwd(*args)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5 if dtype == torch.float32 else 1e-10, atol=1e-3)


@_wanted("graph_aggregate")
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_graph_aggregate_backward_is_order_independent(sim, weighted):
    g = torch.Generator().manual_seed(5)
    B, C, H, W, k, s, p, t, Hk, Wk = 1, 2, 9, 8, 3, 2, 3, 1, 5, 4
    feat = torch.randn(B, C, H, W, generator=g) * 10
    qf = torch.randn(B, C, H, W, generator=g)
    m, n = (H - p + 1) * (W - p + 1), (Hk - p + 1) * (Wk - p + 1)
    w = torch.rand(B, k, s * H, s * W, generator=g) if weighted else None
    grad = torch.randn((B, C, s * H, s * W) if weighted else (B, k, C, s * H, s * W), generator=g)
    args = (grad, feat, _crowded_idx(B, m, k, n, g), qf, w, Hk, Wk, s, p, t, True, 1e-5)
    got = _runs(sim, "_graph_aggregate_bwd", args)
    want = torch.ops.sr_ops._graph_aggregate_bwd(*args)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
