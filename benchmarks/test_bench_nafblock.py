"""NAFBlock: the block on the fused ops vs the plain-torch block; and dwconv_gate_ca alone."""
import pytest

from _cases import params, run


@pytest.mark.parametrize("impl", ["sr_ops", "pytorch"])
@pytest.mark.parametrize("case", params("nafblock"))
def test_nafblock(benchmark, case, impl):
    run(benchmark, case, impl)


@pytest.mark.parametrize("impl", ["sr_ops", "pytorch"])
@pytest.mark.parametrize("case", params("dwconv_gate_ca"))
def test_dwconv_gate_ca(benchmark, case, impl):
    run(benchmark, case, impl)


@pytest.mark.parametrize("impl", ["sr_ops", "pytorch"])
@pytest.mark.parametrize("case", params("naf_ffn"))
def test_naf_ffn(benchmark, case, impl):
    run(benchmark, case, impl)
