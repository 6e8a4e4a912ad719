"""RT4KSR x2 frame: fused LayerNorm2d vs plain PyTorch, same re-parameterised model."""
import pytest

from _cases import params, run


@pytest.mark.parametrize("impl", ["sr_ops", "pytorch"])
@pytest.mark.parametrize("case", params("rt4ksr"))
def test_rt4ksr(benchmark, case, impl):
    run(benchmark, case, impl)
