"""to_channels_last: the CPU kernel vs torch's strided copy."""
import pytest

from _cases import params, run


@pytest.mark.parametrize("impl", ["sr_ops", "pytorch"])
@pytest.mark.parametrize("case", params("to_channels_last"))
def test_to_channels_last(benchmark, case, impl):
    run(benchmark, case, impl)
