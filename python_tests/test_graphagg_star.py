"""GraphAgg*: the weight-free cross-scale baseline, against an explicit composition of the
reference ops, plus shapes, VGG embedding and a PSNR floor on a real image."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import sr_ops
from sr_ops import models, reference
from sr_ops.io import read_image, to_uint8
from sr_ops.metrics import psnr

ASSETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "assets"
SET5_X2 = ASSETS / "datasets" / "SelfExSR" / "Set5" / "image_SRF_2"


def _tv_vgg(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"features.0.weight": torch.randn(64, 3, 3, 3, generator=g) * 0.3,
            "features.0.bias": torch.randn(64, generator=g) * 0.1,
            "features.2.weight": torch.randn(64, 64, 3, 3, generator=g) * 0.05,
            "features.2.bias": torch.randn(64, generator=g) * 0.1}


def composition(x, s, k=5, p=3, t=2, window=30):
    """Reference cross_scale_knn + vertex_map + gather + uniform mean + patch2img."""
    B, C, H, W = x.shape
    hk, wk = H // s, W // s
    son = sr_ops.imresize(x[:, :, :s * hk, :s * wk], 1 / s).clamp(0, 1)
    xp = F.pad(x, (0, (-(W - p)) % t, 0, (-(H - p)) % t), mode="replicate")
    n1, n2 = (hk - p) // t + 1, (wk - p) // t + 1
    win = None if window >= n1 and window >= n2 else min(window, n1, n2)
    _, idx = reference.cross_scale_knn(xp, son, k, p, t, win, s)
    rows, cols = reference.vertex_map(idx, (hk, wk), s, p, t)
    P, m = s * p, idx.shape[1]
    regions = torch.stack([torch.stack([torch.stack([xp[b, :, r:r + P, c:c + P]
                                                     for r, c in zip(rows[b, q].tolist(), cols[b, q].tolist())])
                                        for q in range(m)]) for b in range(B)])  # (B, m, k, C, P, P)
    Hp, Wp = xp.shape[-2:]
    folded = reference.patch2img(regions.transpose(1, 2).reshape(B * k, m, C, P, P), (s * Hp, s * Wp), P, s * t)
    return folded.view(B, k, C, s * Hp, s * Wp).mean(1)[..., :s * H, :s * W].clamp(0, 1)


@pytest.mark.parametrize("scale,size", [(2, (13, 16)), (3, (25, 22))])
def test_matches_reference_composition(scale, size, seed):
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        got = models.build("graphagg_star", scale)(x)
    torch.testing.assert_close(got, composition(x, scale), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scale,size", [(2, (15, 22)), (3, (22, 25)), (4, (25, 31))])
def test_shapes_and_range(scale, size, seed):
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = models.build("graphagg_star", scale)(x)
        y_ada = models.build("graphagg_star", scale, adapn=True)(x)
    assert y.shape == y_ada.shape == (2, 3, scale * size[0], scale * size[1])
    assert 0 <= y.min() and y.max() <= 1 and y.std() > 0
    assert not torch.allclose(y, y_ada)


def test_vgg_embedding(seed):
    x = torch.rand(1, 3, 18, 21)
    plain = models.build("graphagg_star", 2)
    vgg = models.build("graphagg_star", 2, _tv_vgg())
    assert vgg.embed is not None and plain.embed is None
    with torch.no_grad():
        a, b = plain.neighbours(x)[0], vgg.neighbours(x)[0]
        y = vgg(x)
    assert y.shape == (1, 3, 36, 42)
    assert not torch.equal(a, b)  # matched on a different embedding
    with pytest.raises(ValueError, match="not both"):
        models.build("graphagg_star", 2, _tv_vgg(), vgg=_tv_vgg())


def test_bad_inputs():
    model = models.build("graphagg_star", 2)
    with pytest.raises(ValueError, match="too small"):
        model(torch.rand(1, 3, 5, 30))
    with pytest.raises(ValueError, match="x must be an RGB batch"):
        model(torch.rand(3, 20, 20))
    with pytest.raises(ValueError, match="scale must be at least 2"):
        models.build("graphagg_star", 1)


def test_psnr_floor_on_a_real_image():
    path = SET5_X2 / "img_001_SRF_2_HR.png"
    if not path.is_file():
        pytest.skip(f"Set5 not found at {path} (shared assets absent)")
    hr = read_image(path)[None]
    lr = to_uint8(sr_ops.imresize(hr, 0.5)).float() / 255
    with torch.no_grad():
        sr = models.build("graphagg_star", 2)(lr)
    # measured 32.72 dB (bicubic 37.09): neighbours in the wrong place would fall far below
    assert psnr(sr, hr, 2) > 32.0
