"""adapn: fused vs the pure-PyTorch statistics and normalisation."""
import pytest

from _cases import params, run


@pytest.mark.parametrize("impl", ["sr_ops", "pytorch"])
@pytest.mark.parametrize("case", params("adapn"))
def test_adapn(benchmark, case, impl):
    run(benchmark, case, impl)
