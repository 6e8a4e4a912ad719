"""The CUDA cross_scale_knn kernel, run by the simulator, on the tie and non-finite cases
of python_tests/_knn_oracle.py (constant and periodic key maps, inf and NaN in query or
key, k = every candidate), against brute force."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

import sr_ops  # noqa: F401  (the CPU kernels, for _cross_scale_knn_fwd's schema)

from _build import ops as sim_ops

sys.path.insert(0, str(Path(__file__).parents[1]))
from _knn_oracle import assert_matches_brute, semantic_cases  # noqa: E402

SELECTED = os.environ.get("SR_SIM_OPS", "").split()
CASES = semantic_cases()
pytestmark = pytest.mark.skipif(bool(SELECTED) and "cross_scale_knn" not in SELECTED,
                                reason="SR_SIM_OPS leaves cross_scale_knn out")


@pytest.fixture(scope="module")
def sim():
    return sim_ops()


@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_semantics(sim, name, make, dtype):
    query, key, k, P, T, window, scale = make(7)
    sim._sim_set_schedule(2)
    dist, idx = sim._cross_scale_knn_fwd(query.to(dtype), key.to(dtype), k, P, T,
                                         -1 if window is None else window, scale)
    assert_matches_brute(dist, idx, query.to(dtype), key.to(dtype), k, P, T, window, scale)
