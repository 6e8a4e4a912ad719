"""cross_scale_knn: fused vs unfold + chunked matmul + window mask + topk."""
import pytest

from _cases import params, run


@pytest.mark.parametrize("impl", ["sr_ops", "pytorch"])
@pytest.mark.parametrize("case", params("cross_scale_knn"))
def test_cross_scale_knn(benchmark, case, impl):
    run(benchmark, case, impl)
