"""Zero-channel inputs: one rule on every backend. Ops whose result needs a channel
statistic or a channel-wise match reject C = 0 with a clear error (the reference once
crashed inside torch, the Triton layernorm2d divided by zero); adapn, whose statistics are
per channel, returns the empty result."""
import pytest
import torch

import sr_ops

from _helpers import device_for

X = (1, 0, 8, 8)
CALLS = {
    "layernorm2d": lambda d: sr_ops.layernorm2d(torch.randn(X, device=d), torch.randn(0, device=d),
                                                torch.randn(0, device=d)),
    "cross_scale_knn": lambda d: sr_ops.cross_scale_knn(torch.randn(X, device=d), torch.randn(1, 0, 6, 6, device=d),
                                                        2, 3, 2, None, 1),
    "eca": lambda d: sr_ops.eca(torch.randn(X, device=d), torch.randn(1, 1, 3, device=d)),
    "patch2img": lambda d: sr_ops.patch2img(torch.randn(1, 9, 0, 3, 3, device=d), (8, 8), 3, 2),
    "graph_aggregate": lambda d: sr_ops.graph_aggregate(
        torch.randn(1, 0, 12, 12, device=d), torch.zeros(1, 25, 2, dtype=torch.long, device=d),
        torch.randn(1, 0, 12, 12, device=d), (6, 6), 2),
}


@pytest.mark.parametrize("op", sorted(CALLS))
def test_zero_channels_are_rejected(backend, op):
    with pytest.raises(ValueError, match="at least one channel"):
        CALLS[op](device_for(backend))


def test_adapn_zero_channels_is_empty(backend):
    d = device_for(backend)
    z = torch.randn(4, 2, 0, 6, 6, device=d)
    assert sr_ops.adapn(z, torch.randn(4, 0, 3, 3, device=d)).shape == z.shape
