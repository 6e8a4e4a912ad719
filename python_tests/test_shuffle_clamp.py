"""sr_ops.models.blocks.shuffle_clamp: RT4KSR's PixelShuffle + clamp as one op."""
import pytest
import torch
import torch.nn.functional as F

from sr_ops.models.blocks import shuffle_clamp


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("r, shape", [(4, (1, 48, 5, 7)), (2, (2, 12, 3, 1)), (1, (1, 3, 4, 4)), (3, (1, 9, 1, 1))])
@pytest.mark.parametrize("clamp", [True, False])
def test_equals_pixel_shuffle_then_clamp(r, shape, clamp, channels_last):
    y = torch.randn(shape) * 0.8 + 0.5  # values on both sides of [0, 1]
    if channels_last:
        y = y.contiguous(memory_format=torch.channels_last)
    want = F.pixel_shuffle(y, r)
    want = want.clamp(0, 1) if clamp else want
    got = shuffle_clamp(y, r, clamp)
    assert got.is_contiguous() and torch.equal(got, want)


def test_non_finite_values():
    y = torch.tensor([float("nan"), float("inf"), float("-inf"), 0.5]).view(1, 4, 1, 1)
    got = shuffle_clamp(y, 2).flatten()
    assert got[0].isnan() and got[1] == 1 and got[2] == 0 and got[3] == 0.5


@pytest.mark.parametrize("clamp", [True, False])
def test_gradients(clamp):
    y = (torch.rand(1, 8, 3, 4, dtype=torch.float64) * 1.6 - 0.3).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: shuffle_clamp(t, 2, clamp), (y,))
    g = torch.randn(1, 2, 6, 8, dtype=torch.float64)
    (got,) = torch.autograd.grad(shuffle_clamp(y, 2, clamp), y, g)
    yy = y.detach().requires_grad_()
    want_out = F.pixel_shuffle(yy, 2)
    (want,) = torch.autograd.grad(want_out.clamp(0, 1) if clamp else want_out, yy, g)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_opcheck_and_compile():
    y = torch.randn(1, 12, 5, 3).contiguous(memory_format=torch.channels_last).requires_grad_()
    torch.library.opcheck(torch.ops.sr_ops_models.shuffle_clamp.default, (y, 2, True))
    fn = torch.compile(lambda t: shuffle_clamp(t, 2) * 2, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(fn(y), 2 * F.pixel_shuffle(y, 2).clamp(0, 1))


@pytest.mark.parametrize("args", [((1, 10, 2, 2), 2), ((1, 12, 2), 2), ((1, 12, 2, 2), 0), ((1, 12, 2, 2), True)],
                         ids=["channels-not-multiple-of-r2", "3d", "r-zero", "r-bool"])
def test_bad_inputs(args):
    shape, r = args
    with pytest.raises(ValueError, match=r"y must be \(N, C\*r\*r, H, W\)"):
        shuffle_clamp(torch.randn(shape), r)
