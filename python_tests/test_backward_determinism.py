"""The GPU backwards of cross_scale_knn and graph_aggregate sum in a fixed order (gathers
through an inverse index, no atomics), so their gradients are bit-identical run to run and
whatever order the programs run in. Here on the Triton interpreter, which runs programs one
after another: the test runs them again in reverse order, which reorders any accumulation
that races between programs (atomics did), on inputs where many queries choose the same key
patches so that float sums depend on their order. The CUDA kernels' twin is
python_tests/cuda_sim/test_deterministic_backward.py."""
from __future__ import annotations

import contextlib
import importlib

import pytest
import torch

import sr_ops

pytestmark = pytest.mark.skipif("triton" not in sr_ops.available_backends(),
                                reason="triton not usable here (needs TRITON_INTERPRET=1 and triton)")


@contextlib.contextmanager
def reversed_programs():
    """Programs run last to first: program id (x, y, z) becomes (X-1-x, Y-1-y, Z-1-z)."""
    from triton.runtime import interpreter

    builder = interpreter.interpreter_builder
    original = builder.set_grid_idx

    def flipped(x, y, z):
        gx, gy, gz = builder.grid_dim
        original(gx - 1 - x, gy - 1 - y, gz - 1 - z)

    builder.set_grid_idx = flipped
    try:
        yield
    finally:
        builder.set_grid_idx = original


def _crowded_idx(B, m, k, n, g):
    # Two thirds of the entries pick one of three key patches: long, order-sensitive sums.
    idx = torch.randint(0, n, (B, m, k), generator=g)
    crowd = torch.rand(B, m, k, generator=g) < 2 / 3
    return torch.where(crowd, torch.randint(0, 3, (B, m, k), generator=g), idx)


def _knn_case(dtype):
    g = torch.Generator().manual_seed(7)
    B, C, H, W, Hk, Wk, k, P, T = 2, 3, 13, 12, 8, 7, 4, 3, 1
    q = torch.randn(B, C, H, W, generator=g, dtype=torch.float64).to(dtype) * 100
    key = torch.randn(B, C, Hk, Wk, generator=g, dtype=torch.float64).to(dtype)
    m, n = (H - P + 1) * (W - P + 1), (Hk - P + 1) * (Wk - P + 1)
    grad = torch.randn(B, m, k, generator=g, dtype=torch.float64).to(torch.float64 if dtype == torch.float64
                                                                      else torch.float32)
    return grad, _crowded_idx(B, m, k, n, g), q, key, P, T


def _graph_case(dtype, weighted):
    g = torch.Generator().manual_seed(11)
    B, C, H, W, k, s, p, t, Hk, Wk = 1, 2, 9, 10, 4, 2, 3, 1, 5, 5
    feat = torch.randn(B, C, H, W, generator=g, dtype=torch.float64).to(dtype) * 10
    qf = torch.randn(B, C, H, W, generator=g, dtype=torch.float64).to(dtype)
    m, n = (H - p + 1) * (W - p + 1), (Hk - p + 1) * (Wk - p + 1)
    idx = _crowded_idx(B, m, k, n, g)
    w = torch.rand(B, k, s * H, s * W, generator=g, dtype=torch.float64).to(dtype) if weighted else None
    shape = (B, C, s * H, s * W) if weighted else (B, k, C, s * H, s * W)
    grad = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    return grad, feat, idx, qf, w, (Hk, Wk), s, p, t, True, 1e-5


def _triton_backward(op):
    return importlib.import_module(f"sr_ops.ops.{op}")._backward.impls["triton"]


def _runs(fn, args):
    outs = [fn(*args) for _ in range(3)]
    with reversed_programs():
        outs.append(fn(*args))
    return outs


def _assert_identical(outs):
    first = outs[0]
    for other in outs[1:]:
        for a, b in zip(first, other):
            assert torch.equal(a, b), f"{int((a != b).sum())} of {a.numel()} elements differ between runs"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_triton_knn_backward_is_order_independent(dtype):
    args = _knn_case(dtype)
    outs = _runs(_triton_backward("cross_scale_knn"), args)
    _assert_identical(outs)
    from sr_ops.reference.cross_scale_knn_backward import cross_scale_knn_backward
    for got, want in zip(outs[0], cross_scale_knn_backward(*args)):
        torch.testing.assert_close(got, want, rtol=1e-5 if dtype == torch.float32 else 1e-10, atol=1e-3)


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_triton_graph_aggregate_backward_is_order_independent(weighted):
    from sr_ops.ops.graph_aggregate import _reference_bwd
    args = _graph_case(torch.float32, weighted)
    outs = _runs(_triton_backward("graph_aggregate"), args)
    _assert_identical(outs)
    want = _reference_bwd(*[a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                            for a in args])
    for got, ref in zip(outs[0], want):
        torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-4)
