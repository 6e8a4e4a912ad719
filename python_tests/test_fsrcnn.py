"""FSRCNN: yjn870's Y-channel model, ClassSR's RGB branch, the sub-pixel transposed conv."""
from pathlib import Path

import numpy as np
import pytest
import torch
from test_carn import _need, _randomise, mean_psnr

from sr_ops import models
from sr_ops.models.fsrcnn import FSRCNN, ClassSRFSRCNN, rgb_to_ycbcr, ycbcr_to_rgb

ASSETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "assets"
WEIGHTS = ASSETS / "weights" / "fsrcnn"
CLASSSR = ASSETS / "weights" / "classsr"
SET5_ORIGINAL = ASSETS / "datasets" / "Set5" / "original"
SELFEXSR = ASSETS / "datasets" / "SelfExSR"


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_subpixel_equals_transposed_conv(seed, scale):
    net = _randomise(FSRCNN(scale, d=20), seed).eval()
    y = torch.rand(2, 1, 13, 10)
    with torch.inference_mode():
        fast = net.forward_y(y)
        net.subpixel = False
        plain = net.forward_y(y)
    assert fast.shape == (2, 1, 13 * scale, 10 * scale)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)


def test_classsr_branch_subpixel_equals_transposed_conv(seed):
    net = _randomise(ClassSRFSRCNN(4, d=16, clamp=False), seed).eval()
    x = torch.rand(3, 3, 11, 17)
    with torch.inference_mode():
        fast = net(x)
        net.subpixel, net.channels_last = False, False
        plain = net(x)
    assert fast.shape == (3, 3, 44, 68)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)


def _pil_y(img) -> torch.Tensor:
    a = np.asarray(img).astype(np.float32)
    y = 16.0 + (64.738 * a[..., 0] + 129.057 * a[..., 1] + 25.064 * a[..., 2]) / 256.0
    return torch.from_numpy(y / 255.0)


@pytest.mark.parametrize("scale,expected", [(2, 37.12), (3, 33.22), (4, 30.50)])
def test_own_protocol_set5(scale, expected):
    """yjn870's test.py protocol: PIL bicubic LR from the original Set5 images, the network on
    Y, PSNR of the float Y (clamped) against the HR's Y, no border crop.  Its README reports
    37.12/33.22/30.50."""
    Image = pytest.importorskip("PIL.Image")
    files = sorted(_need(SET5_ORIGINAL).glob("*.png"))
    net = models.build("fsrcnn", scale, _need(WEIGHTS / f"fsrcnn_x{scale}.pth"))
    scores = []
    for f in files:
        im = Image.open(f).convert("RGB")
        w, h = im.width // scale * scale, im.height // scale * scale
        hr = im.resize((w, h), resample=Image.BICUBIC)
        lr = hr.resize((w // scale, h // scale), resample=Image.BICUBIC)
        with torch.inference_mode():
            pred = net.forward_y(_pil_y(lr)[None, None]).clamp(0, 1)[0, 0]
        scores.append(10 * torch.log10(1 / ((_pil_y(hr) - pred) ** 2).mean()).item())
    got = sum(scores) / len(scores)
    assert len(scores) == 5
    assert abs(got - expected) < 0.05, f"FSRCNN own protocol x{scale}: {got:.4f} dB"


@pytest.mark.parametrize("scale,expected", [(2, 37.14), (3, 32.60), (4, 30.52)])
def test_rgb_model_set5_sr_ops_protocol(scale, expected):
    """As an RGB model under the sr_ops protocol (MATLAB bicubic LR, crop = scale); numbers
    measured here (x3 is lower than its own protocol: its weights were trained on PIL-resized
    images)."""
    folder = _need(SELFEXSR / "Set5" / f"image_SRF_{scale}")
    net = models.build("fsrcnn", scale, _need(WEIGHTS / f"fsrcnn_x{scale}.pth"))
    got = mean_psnr(net, folder, scale)
    assert abs(got - expected) < 0.05, f"FSRCNN RGB Set5 x{scale}: {got:.4f} dB"


def test_classsr_branch_detected_and_psnr():
    """ClassSR's d=56 branch on the whole Set5 x4 images: 30.50 dB measured here."""
    folder = _need(SELFEXSR / "Set5" / "image_SRF_4")
    net = models.build("fsrcnn", 4, _need(CLASSSR / "FSRCNN_branch3.pth"))
    assert isinstance(net, ClassSRFSRCNN) and net.d == 56
    got = mean_psnr(net, folder, 4)
    assert abs(got - 30.50) < 0.05, f"ClassSR FSRCNN branch3 Set5 x4: {got:.4f} dB"


@pytest.mark.parametrize("branch,d", [(1, 16), (2, 36)])
def test_classsr_branch_widths(branch, d):
    net = models.build("fsrcnn", 4, _need(CLASSSR / f"FSRCNN_branch{branch}.pth"))
    assert net.d == d
    assert net.head_conv[1].weight.numel() == 1  # one shared PReLU slope


def test_rgb_model_keeps_network_y(seed):
    net = _randomise(FSRCNN(3, d=12), seed).eval()
    net.clamp = False
    x = torch.rand(1, 3, 9, 8)
    with torch.inference_mode():
        out = net(x)
        y = net.forward_y(rgb_to_ycbcr(x)[:, :1])
    assert out.shape == (1, 3, 27, 24)
    torch.testing.assert_close(rgb_to_ycbcr(out)[:, :1], y, rtol=1e-5, atol=1e-5)


def test_ycbcr_round_trip(seed):
    x = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(x)), x)
    # yjn870 divides by 256 (not 255): white maps to Y = 16 + 218.859 * 255/256, Cb = Cr = 128.
    white = rgb_to_ycbcr(torch.ones(1, 3, 1, 1, dtype=torch.float64)).flatten() * 255
    expected = torch.tensor([16 + 218.859 * 255 / 256, 128.0, 128.0], dtype=torch.float64)
    torch.testing.assert_close(white, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("variant,scale", [("yjn870", 2), ("yjn870", 3), ("classsr", 4)])
def test_odd_sizes_and_round_trip(seed, variant, scale):
    net = _randomise(models.build("fsrcnn", scale, variant=variant, d=24), seed)
    again = models.build("fsrcnn", scale, net.state_dict())
    assert type(again) is type(net)
    x = torch.rand(2, 3, 1 + seed % 3, 13)
    with torch.inference_mode():
        y = net(x)
        assert torch.equal(again(x), y)
    assert y.shape == (2, 3, scale * x.shape[2], 13 * scale)
    assert 0 <= y.min() and y.max() <= 1


def test_strict_load_names_keys():
    state = FSRCNN(2).state_dict()
    del state["mid_part.4.bias"]
    state["mid_part.99.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match=r"mid_part\.4\.bias") as info:
        models.build("fsrcnn", 2, state)
    assert "mid_part.99.weight" in str(info.value)
    state = ClassSRFSRCNN(4, d=16).state_dict()
    with pytest.raises(ValueError, match=r"head_conv\.0\.weight"):
        models.build("fsrcnn", 4, state, d=36)


def test_bad_arguments():
    with pytest.raises(ValueError, match="scale"):
        models.build("fsrcnn", 2, variant="classsr")
    with pytest.raises(ValueError, match="variant"):
        models.build("fsrcnn", 2, variant="fsrcnn-s")
    with pytest.raises(KeyError, match="not an FSRCNN checkpoint"):
        models.build("fsrcnn", 2, {"conv.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="x must"):
        models.build("fsrcnn", 2)(torch.rand(1, 1, 8, 8))


def test_classsr_branch_out_buffer_and_autograd(seed):
    """The inference path (fused shuffle + clamp, optionally into a caller's buffer) equals the
    differentiable path, which still backpropagates."""
    net = _randomise(ClassSRFSRCNN(4, d=16), seed).eval()
    x = torch.rand(2, 3, 9, 7)
    with torch.no_grad():
        plain = net(x)
        buf = torch.full((2, 3, 36, 28), -1.0)
        assert net(x, out=buf) is buf
    torch.testing.assert_close(buf, plain)
    xg = x.clone().requires_grad_(True)
    y = net(xg)
    torch.testing.assert_close(y.detach(), plain, rtol=1e-5, atol=1e-6)
    y.sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="out"):
        net(xg, out=torch.empty(2, 3, 36, 28))
    with torch.no_grad(), pytest.raises(ValueError, match="out must be"):
        net(x, out=torch.empty(2, 3, 36, 29))
