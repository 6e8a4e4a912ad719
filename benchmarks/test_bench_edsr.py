"""EDSR-baseline x2 forward (speed only: no fused op, so only the eager model runs)."""
import pytest

from _cases import params, run


@pytest.mark.parametrize("case", params("edsr"))
def test_edsr(benchmark, case):
    run(benchmark, case, "pytorch")
