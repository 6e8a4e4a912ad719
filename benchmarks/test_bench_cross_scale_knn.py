"""cross_scale_knn: fused vs unfold + chunked matmul + window mask + topk, and on the
global case FAISS IndexFlatL2 (skipped with the reason when faiss-cpu is absent)."""
import pytest

from _cases import params, run


@pytest.mark.parametrize("impl", ["sr_ops", "pytorch", "faiss"])
@pytest.mark.parametrize("case", params("cross_scale_knn"))
def test_cross_scale_knn(benchmark, case, impl):
    if impl not in case.impls:
        reason = case.extra.get("skipped", {}).get(impl)
        pytest.skip(reason or f"{case.label} has no {impl} row")
    run(benchmark, case, impl)
