"""sr_ops.self_ensemble: the x8 flip/rotation average and its symmetry."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sr_ops


def net(scale: int = 2) -> nn.Module:
    """A conv net with no symmetry of its own (random 3x3 kernels)."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3 * scale * scale, 3, padding=1),
                         nn.PixelShuffle(scale)).eval()


def dihedral(t):
    """The eight images of t under D4, written with transposes (not rot90, as the op is)."""
    out = []
    for u in (t, t.transpose(-1, -2)):
        out += [u, u.flip(-1), u.flip(-2), u.flip(-1, -2)]
    return out


def test_matches_explicit_average(seed):
    model = net()
    x = torch.rand(2, 3, 9, 14)
    with torch.no_grad():
        # each transform is its own inverse except the transposes mixed with one flip; undo
        # them by inverting explicitly: T = flips then transpose, T^-1 = transpose then flips
        total = 0
        for transpose in (False, True):
            for dims in ((), (-1,), (-2,), (-1, -2)):
                u = x.transpose(-1, -2) if transpose else x
                u = u.flip(dims) if dims else u
                y = model(u)
                y = y.flip(dims) if dims else y
                total = total + (y.transpose(-1, -2) if transpose else y)
    out = sr_ops.self_ensemble(model, x)
    assert out.shape == (2, 3, 18, 28)
    assert (out - total / 8).abs().max().item() < 1e-6


def test_equivariant_under_every_transform(seed):
    model = net(3)
    x = torch.rand(1, 3, 7, 11)
    base = dihedral(sr_ops.self_ensemble(model, x))
    for k, tx in enumerate(dihedral(x)):
        assert (sr_ops.self_ensemble(model, tx.contiguous()) - base[k]).abs().max().item() < 1e-5


def test_symmetric_model_unchanged_and_generic_model_changed(seed):
    x = torch.rand(1, 3, 10, 13)
    nearest = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
    assert (sr_ops.self_ensemble(nearest, x) - nearest(x)).abs().max().item() < 1e-6
    model = net()
    with torch.no_grad():
        assert (sr_ops.self_ensemble(model, x) - model(x)).abs().max().item() > 1e-3


def test_three_dim_half_and_errors(seed):
    model = net()
    x = torch.rand(3, 8, 6)
    with torch.no_grad():
        assert sr_ops.self_ensemble(model, x).shape == (3, 16, 12)
    assert sr_ops.self_ensemble(lambda t: t * 2, x.half()).dtype == torch.float16
    with pytest.raises(TypeError, match="x must be"):
        sr_ops.self_ensemble(model, torch.ones(1, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="x must be"):
        sr_ops.self_ensemble(model, torch.rand(4, 4))
    with pytest.raises(ValueError, match="does not map back"):
        sr_ops.self_ensemble(lambda t: t[..., :4, :6].contiguous(), torch.rand(1, 3, 8, 6))
