"""IGNN ×2 forward, graph ops fused vs reference. A tiny model and image here (CI runs this
with --benchmark-disable); the official size is `python -m sr_ops bench --op ignn`."""
import pytest

from _cases import run
from sr_ops.bench.cases import ignn

TINY = ignn.case(24, n_feats=16, n_resblocks=2)


@pytest.mark.parametrize("impl", ["sr_ops", "pytorch"])
def test_ignn(benchmark, impl):
    run(benchmark, TINY, impl)
