"""The CUDA pastes (gather_patches' backward, merge_patches' forward) on the simulator: the
same bits on every run and under either thread schedule, equal to the ascending-order loop
(python_tests/_paste_oracle.py), over heavily overlapping windows where the order of the
float sums shows."""
from __future__ import annotations

import pytest
import torch

import sr_ops  # noqa: F401

from _build import ops as sim_ops
from _paste_oracle import ascending_paste, dense_windows


@pytest.fixture(scope="module")
def sim():
    return sim_ops()


def _runs(sim, op, args):
    outs = []
    for schedule in (0, 1, 0):  # forward, reverse, forward
        sim._sim_set_schedule(schedule)
        outs.append(getattr(sim, op)(*args))
    return outs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("scale, P, step", [(1, 5, 1), (4, 2, 1), (2, 3, 2)])
def test_merge_forward_is_the_ascending_sum_every_run(sim, dtype, scale, P, step):
    g = torch.Generator().manual_seed(7)
    B, H, W = 2, 7, 19
    coords, order = dense_windows(B, H, W, P, step, g, repeat=2)
    Q = scale * P
    outputs = (torch.randn(order.shape[0], 2, Q, Q, generator=g, dtype=torch.float64) * 100).to(dtype)
    outs = _runs(sim, "_merge_patches_fwd", (outputs, coords, order, B, H, W, scale))
    want = ascending_paste(outputs, coords, order, B, scale * H, scale * W, scale, mean=True)
    for out in outs:
        assert torch.equal(out, want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gather_backward_is_the_ascending_sum_every_run(sim, dtype):
    g = torch.Generator().manual_seed(3)
    B, H, W, P = 1, 18, 70, 6
    coords, order = dense_windows(B, H, W, P, 1, g)
    grad = (torch.randn(order.shape[0], 3, P, P, generator=g, dtype=torch.float64) * 1e3).to(dtype)
    outs = _runs(sim, "_gather_patches_bwd", (grad, coords, order, B, H, W))
    want = ascending_paste(grad, coords, order, B, H, W)
    for out in outs:
        assert torch.equal(out, want)


def test_class_dispatch_blocks_give_the_stable_order(sim):
    """A 2K image's patch count: hundreds of blocks whose counts are prefix-summed."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 3, (2774,), generator=g)
    ids[100:900] = 1  # long runs of one class across many blocks
    want = torch.sort(ids, stable=True).indices, torch.bincount(ids, minlength=3)
    for order, counts in _runs(sim, "_class_dispatch_fwd", (ids, 3)):
        assert torch.equal(order, want[0]) and torch.equal(counts, want[1])
