"""CARN-M: nmhkahn's multi-scale checkpoint and ClassSR's BatchNorm branches."""
import pickle
from pathlib import Path

import pytest
import torch

import sr_ops
from sr_ops import models
from sr_ops.io import read_image, to_uint8
from sr_ops.metrics import psnr
from sr_ops.models.carn import CARNM

ASSETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "assets"
CARN_M = ASSETS / "weights" / "carn_m" / "carn_m.pth"
CLASSSR = ASSETS / "weights" / "classsr"
SELFEXSR = ASSETS / "datasets" / "SelfExSR"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found (shared assets absent)")
    return path


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point() and "mean" not in name.split(".")[0]:  # keep the fixed mean shifts
                t.copy_(torch.randn(t.shape, generator=g) * 0.1 + (1.0 if name.endswith("running_var") else 0.0))
    return model


def mean_psnr(net, folder: Path, scale: int) -> float:
    scores = []
    for hr_path in sorted(folder.glob("*_HR.png")):
        hr = read_image(hr_path)
        lr = to_uint8(sr_ops.imresize(hr, 1 / scale)).float() / 255
        with torch.inference_mode():
            sr = net(lr[None])[0]
        assert sr.shape == hr.shape
        scores.append(psnr(sr, hr, crop_border=scale).item())
    assert scores, f"no images in {folder}"
    return sum(scores) / len(scores)


@pytest.mark.parametrize("scale,expected", [(2, 37.69), (3, 34.07), (4, 31.88)])
def test_official_carn_m_set5_psnr(scale, expected):
    folder = _need(SELFEXSR / "Set5" / f"image_SRF_{scale}")
    net = models.build("carn_m", scale, _need(CARN_M))
    assert net.variant == "official" and net.nf == 64
    got = mean_psnr(net, folder, scale)
    assert abs(got - expected) < 0.05, f"CARN-M Set5 x{scale}: {got:.4f} dB"


def test_classsr_branch_detected_and_psnr():
    """ClassSR's nf=36 branch: BatchNorm 1x1 convs, one upsampler; on whole Set5 x4 images
    30.23 dB measured here (branches 2 and 3: 31.62, 31.68; it was trained on "simple"
    sub-images only)."""
    folder = _need(SELFEXSR / "Set5" / "image_SRF_4")
    net = models.build("carn_m", 4, _need(CLASSSR / "CARN_branch1.pth"))
    assert net.variant == "classsr" and net.nf == 36 and not net.training
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    got = mean_psnr(net, folder, 4)
    assert abs(got - 30.23) < 0.05, f"ClassSR CARN branch1 Set5 x4: {got:.4f} dB"


@pytest.mark.parametrize("branch,nf", [(2, 52), (3, 64)])
def test_classsr_branch_widths(branch, nf):
    net = models.build("carn_m", 4, _need(CLASSSR / f"CARN_branch{branch}.pth"))
    assert net.nf == nf
    x = torch.rand(1, 3, 9, 14)
    with torch.inference_mode():
        assert net(x).shape == (1, 3, 36, 56)


class NotATensor:
    """Any class outside torch's weights-only allow-list."""


def test_checkpoint_loads_with_weights_only(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"entry.weight": NotATensor()}, path)
    with pytest.raises(pickle.UnpicklingError):
        models.build("carn_m", 2, path)


def test_strict_load_names_missing_and_unexpected_keys():
    state = CARNM(2).state_dict()
    del state["b2.c3.body.0.weight"]
    state["b9.extra.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match=r"b2\.c3\.body\.0\.weight") as info:
        models.build("carn_m", 2, state)
    assert "b9.extra.weight" in str(info.value)


def test_wrong_width_names_shapes():
    state = CARNM(4, nf=36, variant="classsr").state_dict()
    with pytest.raises(ValueError, match=r"entry\.weight"):
        models.build("carn_m", 4, state, nf=52)


def test_single_scale_checkpoint_refuses_other_scale():
    state = CARNM(4, nf=36, variant="classsr").state_dict()
    with pytest.raises(KeyError, match=r"upsample\.up\.body\.3\.weight"):
        models.build("carn_m", 2, state)


def test_unknown_checkpoint_layout():
    with pytest.raises(KeyError, match="not a CARN-M checkpoint"):
        models.build("carn_m", 2, {"conv.weight": torch.zeros(1)})


@pytest.mark.parametrize("variant", ["official", "classsr"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_odd_sizes_and_round_trip(seed, variant, scale):
    net = _randomise(CARNM(scale, nf=16, variant=variant), seed).eval()
    again = models.build("carn_m", scale, net.state_dict())
    assert again.variant == variant and again.nf == 16
    x = torch.rand(2, 3, 7, 11)
    with torch.inference_mode():
        y = net(x)
        assert torch.equal(again(x), y)
    assert y.shape == (2, 3, 7 * scale, 11 * scale)
    assert 0 <= y.min() and y.max() <= 1 and y.std() > 0


def test_eval_batch_norm_is_per_image(seed):
    """In eval mode BatchNorm uses its running statistics: batching changes nothing."""
    net = models.build("carn_m", 4, _randomise(CARNM(4, nf=16, variant="classsr"), seed).state_dict())
    x = torch.rand(3, 3, 8, 10)
    with torch.inference_mode():
        whole = net(x)
        single = torch.cat([net(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(whole, single, rtol=1e-5, atol=1e-5)


def test_bad_arguments():
    net = models.build("carn_m", 2)
    with pytest.raises(ValueError, match="x must"):
        net(torch.rand(3, 8, 8))
    with pytest.raises(TypeError, match="x must"):
        net(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="scale"):
        models.build("carn_m", 5)
    with pytest.raises(ValueError, match="variant"):
        models.build("carn_m", 2, variant="edsr")
    with pytest.raises(ValueError, match="divisible"):
        CARNM(2, nf=30, group=4)
