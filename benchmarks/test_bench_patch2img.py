"""patch2img: fused vs F.fold + count normalisation."""
import pytest

from _cases import params, run


@pytest.mark.parametrize("impl", ["sr_ops", "pytorch"])
@pytest.mark.parametrize("case", params("patch2img"))
def test_patch2img(benchmark, case, impl):
    run(benchmark, case, impl)
