"""EDSR-baseline x2 forward (speed only: no fused op, sr_ops and pytorch run the same model)."""
import pytest

from _cases import params, run


@pytest.mark.parametrize("impl", ["sr_ops", "pytorch"])
@pytest.mark.parametrize("case", params("edsr"))
def test_edsr(benchmark, case, impl):
    run(benchmark, case, impl)
