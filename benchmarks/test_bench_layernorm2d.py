"""layernorm2d and gelu_layernorm2d: fused vs the pure-PyTorch reference."""
import pytest

from _cases import params, run


@pytest.mark.parametrize("impl", ["sr_ops", "pytorch"])
@pytest.mark.parametrize("case", params("layernorm2d"))
def test_layernorm2d(benchmark, case, impl):
    run(benchmark, case, impl)


@pytest.mark.parametrize("impl", ["sr_ops", "pytorch"])
@pytest.mark.parametrize("case", params("gelu_layernorm2d"))
def test_gelu_layernorm2d(benchmark, case, impl):
    run(benchmark, case, impl)
