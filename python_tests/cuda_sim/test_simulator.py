"""The simulator itself: it must catch what the GPU would get wrong (a missing barrier, an
invalid launch, a partial warp mask) and model what the kernels rely on."""
from __future__ import annotations

import os

import pytest
import torch

from _build import ops as sim_ops

TSAN = os.environ.get("SR_SIM_TSAN") == "1"
ORDERED = [] if TSAN else [0, 1]  # forward, reverse


@pytest.fixture(scope="module")
def sim():
    return sim_ops()


@pytest.fixture
def x():
    return torch.randn(64, generator=torch.Generator().manual_seed(7))


@pytest.mark.parametrize("schedule", ORDERED + [2])
def test_block_sum_with_barriers(sim, x, schedule):
    sim._sim_set_schedule(schedule)
    out = sim._sim_selftest("block_sum", x)
    torch.testing.assert_close(out[:2], x.sum().repeat(2), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(TSAN, reason="the free schedule races instead; TSan reports it")
def test_missing_barrier_reads_stale_shared_memory(sim, x):
    # The tree reads higher-numbered slots: the forward schedule runs thread t before its
    # partner t + 32 has written. (Reverse has written them all by then; it is the one that
    # catches reads of lower-numbered slots.)
    wrong = []
    for schedule in ORDERED:
        sim._sim_set_schedule(schedule)
        out = sim._sim_selftest("block_sum_no_barrier", x)
        wrong.append(not torch.allclose(out[:2], x.sum().repeat(2), rtol=1e-3, atol=1e-3))
    assert wrong == [True, False]


@pytest.mark.parametrize("schedule", ORDERED + [2])
def test_warp_shuffle_and_match(sim, schedule):
    sim._sim_set_schedule(schedule)
    x = torch.arange(64, dtype=torch.float32) % 3
    out = sim._sim_selftest("warp", x)
    sums = torch.cat([x[:32].sum().repeat(32), x[32:].sum().repeat(32)])
    torch.testing.assert_close(out[:64], sums)
    lanes = torch.arange(64) % 32
    for t in range(64):
        w = t // 32 * 32
        want = sum(1 << int(lanes[u]) for u in range(w, w + 32) if x[u] == x[t])
        assert out[64 + t] == torch.tensor(float(want)), t  # the mask, rounded to float32


def test_dynamic_shared_memory_is_poisoned(sim, x):
    assert torch.isnan(sim._sim_selftest("dynamic_shared", x)[:64]).all()


def test_invalid_launch_raises(sim, x):
    with pytest.raises(RuntimeError, match="bad_launch failed: invalid configuration"):
        sim._sim_selftest("bad_launch", x)


def test_partial_warp_mask_is_reported(sim, x):
    with pytest.raises(RuntimeError, match="partial_mask failed"):
        sim._sim_selftest("partial_mask", x)
