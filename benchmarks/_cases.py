"""Turns the shared cases (sr_ops.bench.cases) into pytest-benchmark parameters."""
import pytest
import torch

from sr_ops.bench.cases import all_cases

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def params(op: str):
    return [pytest.param(c, id=c.label.replace(" ", "_")) for c in all_cases() if c.op == op]


def run(benchmark, case, impl: str):
    inputs = case.make(DEVICE)
    fn = case.impls[impl]
    benchmark.group = f"{case.op}: {case.label}"
    result = benchmark(fn, inputs)
    if impl != "pytorch":
        expected = case.impls["pytorch"](inputs)
        # cases whose outputs are long float32 reductions (weight gradients) say their tolerance
        torch.testing.assert_close(result, expected, **case.extra.get("tol", dict(rtol=1e-4, atol=1e-5)))
    return result
