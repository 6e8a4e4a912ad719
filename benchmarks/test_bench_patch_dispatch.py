"""ClassSR patch dispatch: fused extract + dispatch + gather + merge vs the official loops."""
import pytest

from _cases import params, run


@pytest.mark.parametrize("impl", ["sr_ops", "pytorch"])
@pytest.mark.parametrize("case", params("patch_dispatch"))
def test_patch_dispatch(benchmark, case, impl):
    run(benchmark, case, impl)
