"""MSRResNet (ClassSR's SRResNet branches)."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_carn import _need, _randomise, mean_psnr

from sr_ops import models
from sr_ops.models.srresnet import MSRResNet

ASSETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "assets"
CLASSSR = ASSETS / "weights" / "classsr"
SELFEXSR = ASSETS / "datasets" / "SelfExSR"


def test_branch1_set5_psnr():
    """nf=36 branch on whole Set5 x4 images: 31.93 dB measured here (bicubic 28.43)."""
    folder = _need(SELFEXSR / "Set5" / "image_SRF_4")
    net = models.build("srresnet", 4, _need(CLASSSR / "SRResNet_branch1.pth"))
    assert net.nf == 36 and len(net.recon_trunk) == 16
    got = mean_psnr(net, folder, 4)
    assert abs(got - 31.93) < 0.05, f"SRResNet branch1 Set5 x4: {got:.4f} dB"


def test_branch2_width():
    net = models.build("srresnet", 4, _need(CLASSSR / "SRResNet_branch2.pth"))
    assert net.nf == 52


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_odd_sizes_and_round_trip(seed, scale):
    net = _randomise(MSRResNet(scale, nf=8, nb=2), seed).eval()
    again = models.build("srresnet", scale, net.state_dict())
    assert again.nf == 8 and len(again.recon_trunk) == 2
    x = torch.rand(2, 3, 5, 9)
    with torch.inference_mode():
        y = net(x)
        assert torch.equal(again(x), y)
    assert y.shape == (2, 3, 5 * scale, 9 * scale)


def test_zero_body_is_bilinear(seed):
    """With the residual path silenced (conv_last = 0) the output is the bilinear upscale."""
    net = _randomise(MSRResNet(4, nf=8, nb=1, clamp=False), seed).eval()
    with torch.no_grad():
        net.conv_last.weight.zero_()
        net.conv_last.bias.zero_()
    x = torch.rand(1, 3, 6, 7)
    with torch.inference_mode():
        torch.testing.assert_close(net(x), F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False))


def test_strict_load_and_bad_arguments():
    state = MSRResNet(4, nf=8, nb=2).state_dict()
    del state["upconv2.weight"]
    with pytest.raises(KeyError, match=r"upconv2\.weight"):
        models.build("srresnet", 4, state)
    with pytest.raises(KeyError, match=r"upconv2\.(weight|bias)"):
        models.build("srresnet", 2, MSRResNet(4, nf=8, nb=2).state_dict())
    with pytest.raises(ValueError, match="scale"):
        models.build("srresnet", 8)
    with pytest.raises(ValueError, match="x must"):
        models.build("srresnet", 2, nf=8, nb=1)(torch.rand(2, 4, 8, 8))
