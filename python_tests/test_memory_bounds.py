"""The fused CPU kernels hold memory flat: at the benchmark sizes, the peak of a call
(inputs included) stays within 2x of its inputs plus its outputs."""
import pytest
import torch

import sr_ops
from sr_ops.bench.cases import cross_scale_knn as knn_case
from sr_ops.bench.cases import graph_aggregate as ga_case
from sr_ops.bench.memory import cpu_peak_supported, peak_bytes

pytestmark = pytest.mark.skipif(
    "cpu" not in sr_ops.available_backends() or not cpu_peak_supported(),
    reason="needs the CPU extension and /proc/self/clear_refs to measure peak memory",
)


def nbytes(*tensors):
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def test_cross_scale_knn_memory_is_flat():
    d = knn_case._make(64, 384, "cpu")  # the benchmark size
    with sr_ops.use_backend("cpu"), torch.no_grad():
        dist, idx = sr_ops.cross_scale_knn(d["query"], d["key"], 5, 3, 2, 30, 2)
        extra = peak_bytes(lambda: sr_ops.cross_scale_knn(d["query"], d["key"], 5, 3, 2, 30, 2))
    inputs, outputs = nbytes(d["query"], d["key"]), nbytes(dist, idx)
    assert inputs + extra <= 2 * (inputs + outputs), (extra, inputs, outputs)


def test_graph_aggregate_memory_is_flat():
    d = ga_case.make_inputs(64, 160, "cpu")  # the benchmark size
    args = (d["feat"], d["idx"], d["query_feat"], d["key_hw"], 2, 3, 2, d["weights"])
    with sr_ops.use_backend("cpu"), torch.no_grad():
        out = sr_ops.graph_aggregate(*args)
        extra = peak_bytes(lambda: sr_ops.graph_aggregate(*args))
    inputs = nbytes(d["feat"], d["idx"], d["query_feat"], d["weights"])
    assert inputs + extra <= 2 * (inputs + nbytes(out)), (extra, inputs, nbytes(out))
    # ... and far below what the gathered (B, m, k, C, s*p, s*p) neighbours alone would take.
    gathered = d["idx"].numel() * 64 * 36 * 4
    assert extra < gathered / 4
