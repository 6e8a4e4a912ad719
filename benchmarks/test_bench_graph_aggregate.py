"""graph_aggregate: fused vs unfold + index + AdaPN + F.fold + weighting."""
import pytest

from _cases import params, run


@pytest.mark.parametrize("impl", ["sr_ops", "pytorch"])
@pytest.mark.parametrize("case", params("graph_aggregate"))
def test_graph_aggregate(benchmark, case, impl):
    run(benchmark, case, impl)
