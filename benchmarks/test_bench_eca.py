"""eca: fused vs the pure-PyTorch reference."""
import pytest

from _cases import params, run


@pytest.mark.parametrize("impl", ["sr_ops", "pytorch"])
@pytest.mark.parametrize("case", params("eca"))
def test_eca(benchmark, case, impl):
    run(benchmark, case, impl)
