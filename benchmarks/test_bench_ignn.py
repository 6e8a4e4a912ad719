"""IGNN ×2 forward, graph ops fused vs reference. A tiny model and image here (CI runs this
with --benchmark-disable); the official size is `python -m sr_ops bench --op ignn`."""
import pytest

from sr_ops.bench.cases import ignn

from _cases import run

TINY = ignn.case(24, n_feats=16, n_resblocks=2)


@pytest.mark.parametrize("impl", ["sr_ops", "pytorch"])
def test_ignn(benchmark, impl):
    run(benchmark, TINY, impl)
