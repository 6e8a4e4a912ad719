"""ClassSR x4 (FSRCNN and CARN-M branches) on the sr_ops patch-dispatch ops."""
from pathlib import Path

import pytest
import torch
from test_carn import _need, _randomise

import sr_ops
from sr_ops import models
from sr_ops.io import read_image, to_uint8
from sr_ops.metrics import psnr
from sr_ops.models.classsr import ClassSR, fsrcnn_branch_mflops

ASSETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "assets"
CLASSSR = ASSETS / "weights" / "classsr"
SET5_X4 = ASSETS / "datasets" / "SelfExSR" / "Set5" / "image_SRF_4"


def _official(name: str) -> ClassSR:
    file = {"classsr_fsrcnn": "ClassSR_FSRCNN.pth", "classsr_carn": "ClassSR_CARN.pth"}[name]
    return models.build(name, 4, _need(CLASSSR / file))


def _random(name: str, seed: int) -> ClassSR:
    return _randomise(models.build(name, 4), seed).eval()


def _loop_reference(net: ClassSR, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """One sub-image at a time (the official test's way), each through its class's branch,
    then every HR pixel averaged over the sub-images covering it; grid from classify."""
    coords, _ = net.classify(x)
    s, P = net.scale, net.patch_size
    B, C, H, W = x.shape
    acc = torch.zeros(B, C, s * H, s * W, dtype=torch.float64)
    cnt = torch.zeros(B, 1, s * H, s * W, dtype=torch.float64)
    for (b, r, c), k in zip(coords.tolist(), ids.tolist()):
        out = net.branches[k](x[b:b + 1, :, r:r + P, c:c + P])[0].double()
        acc[b, :, s * r:s * (r + P), s * c:s * (c + P)] += out
        cnt[b, :, s * r:s * (r + P), s * c:s * (c + P)] += 1
    assert cnt.min() >= 1, "the grid must cover every pixel"
    return (acc / cnt).float()


def _set5(net: ClassSR, official_grid: bool) -> tuple[float, list[int]]:
    """Mean Y-PSNR (crop 4) and class counts.  ``official_grid``: crop the LR image to the
    official test's grid (step 28 from the top-left, the right/bottom remainder dropped)."""
    scores, counts = [], torch.zeros(3, dtype=torch.int64)
    for path in sorted(_need(SET5_X4).glob("*_HR.png")):
        hr = read_image(path)
        lr = to_uint8(sr_ops.imresize(hr, 1 / 4)).float() / 255
        if official_grid:
            h, w = [(n - 32) // 28 * 28 + 32 for n in lr.shape[1:]]
            lr, hr = lr[:, :h, :w], hr[:, :4 * h, :4 * w]
        with torch.inference_mode():
            _, ids = net.classify(lr[None])
            sr = net(lr[None])[0]
        counts += torch.bincount(ids, minlength=3)
        scores.append(psnr(sr, hr, crop_border=4).item())
    return sum(scores) / len(scores), counts.tolist()


def test_classsr_fsrcnn_set5():
    """Official grid: 30.04 dB and classes 2/16/12 as an independent implementation of the
    official test; the whole image (this model's grid covers the border too): 30.54 dB."""
    net = _official("classsr_fsrcnn")
    got, counts = _set5(net, official_grid=True)
    assert counts == [2, 16, 12]
    assert abs(got - 30.04) < 0.05, f"ClassSR-FSRCNN Set5 x4 (official grid): {got:.4f} dB"
    got, counts = _set5(net, official_grid=False)
    assert sum(counts) == 58
    assert abs(got - 30.54) < 0.05, f"ClassSR-FSRCNN Set5 x4 (whole image): {got:.4f} dB"


def test_classsr_carn_set5():
    """Official grid: 31.23 dB, classes 6/15/9 (whole image measured here: 31.76 dB)."""
    got, counts = _set5(_official("classsr_carn"), official_grid=True)
    assert counts == [6, 15, 9]
    assert abs(got - 31.23) < 0.05, f"ClassSR-CARN Set5 x4 (official grid): {got:.4f} dB"


def test_official_matches_loop_reference():
    net = _official("classsr_fsrcnn")
    hr = read_image(_need(SET5_X4 / "img_002_SRF_4_HR.png"))
    x = (to_uint8(sr_ops.imresize(hr, 1 / 4)).float() / 255)[None]
    with torch.inference_mode():
        _, ids = net.classify(x)
        assert len(set(ids.tolist())) > 1  # a mixed image
        torch.testing.assert_close(net(x), _loop_reference(net, x, ids), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,shape,n", [("classsr_fsrcnn", (2, 45, 61), 12), ("classsr_carn", (1, 33, 45), 4)])
def test_given_ids_match_loop_reference(seed, name, shape, n):
    """Random class per sub-image, odd LR sizes (not multiples of 28): for 45 x 61, rows 0, 13
    (the last shifted to the border), cols 0, 28, 29."""
    net = _random(name, seed)
    B, H, W = shape
    x = torch.rand(B, 3, H, W)
    coords, ids = net.classify(x)
    assert coords.shape == (n, 3) and coords.dtype == torch.int64 and ids.shape == (n,)
    ids = torch.randint(0, 3, ids.shape)
    with torch.inference_mode():
        y = net(x, ids)
        assert y.shape == (B, 3, 4 * H, 4 * W)
        torch.testing.assert_close(y, _loop_reference(net, x, ids), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("k", [0, 1, 2])
def test_single_class_is_branch_then_merge(seed, k):
    net = _random("classsr_fsrcnn", seed)
    x = torch.rand(1, 3, 40, 33)
    patches, coords = sr_ops.extract_patches(x, 32, 28)
    order = torch.arange(patches.shape[0])
    with torch.inference_mode():
        expected = sr_ops.merge_patches(net.branches[k](patches), coords, order, (1, 40, 33), 4)
        got = net(x, torch.full((patches.shape[0],), k))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_classifier_ids_are_the_default(seed):
    net = _random("classsr_fsrcnn", seed)
    x = torch.rand(1, 3, 60, 70)
    with torch.inference_mode():
        _, ids = net.classify(x)
        assert torch.equal(net(x), net(x, ids))


def test_classifier_gemm_matches_layers(seed):
    net = _random("classsr_fsrcnn", seed)
    p = torch.rand(7, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(net.classifier(p), net.classifier.reference_forward(p), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("hw", [(2, 60, 88), (1, 45, 61)])  # all corners on the 4-grid / some not
def test_classifier_shared_blocks_match_per_patch(seed, hw):
    net = _random("classsr_fsrcnn", seed)
    x = torch.rand(hw[0], 3, *hw[1:])
    patches, coords = sr_ops.extract_patches(x, 32, 28)
    with torch.inference_mode():
        got = net.classifier.forward_grid(x, coords, 32)
        torch.testing.assert_close(got, net.classifier.reference_forward(patches), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("hw", [(20, 13), (32, 32), (1, 50)])
def test_small_images_are_padded(seed, hw):
    net = _random("classsr_fsrcnn", seed)
    x = torch.rand(1, 3, *hw)
    with torch.inference_mode():
        coords, ids = net.classify(x)
        y = net(x)
    assert ids.shape[0] == 1 + (hw[1] > 32)
    assert y.shape == (1, 3, 4 * hw[0], 4 * hw[1])


def test_class_ids_validation(seed):
    net = _random("classsr_fsrcnn", seed)
    x = torch.rand(1, 3, 40, 40)
    n = net.classify(x)[1].shape[0]
    with pytest.raises(ValueError, match="class_ids"):
        net(x, torch.zeros(n + 1, dtype=torch.int64))
    with pytest.raises(ValueError, match="class_ids"):
        net(x, torch.full((n,), 3))
    with pytest.raises(ValueError, match="class_ids"):
        net(x, torch.zeros(n))
    with pytest.raises(ValueError, match="x must"):
        net(torch.rand(3, 40, 40))


def test_strict_loading_and_round_trip(seed):
    net = _random("classsr_carn", seed)
    again = models.build("classsr_carn", 4, net.state_dict())
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(again(x), net(x))
    state = _random("classsr_fsrcnn", seed).state_dict()
    del state["classifier.lastOut.bias"]
    state["net4.head_conv.0.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match=r"classifier\.lastOut\.bias") as info:
        models.build("classsr_fsrcnn", 4, state)
    assert "net4.head_conv.0.weight" in str(info.value)
    with pytest.raises(KeyError, match=r"net1\.entry\.weight"):
        models.build("classsr_carn", 4, _random("classsr_fsrcnn", seed).state_dict())


def test_official_checkpoints_load_weights_only():
    for name in ("classsr_fsrcnn", "classsr_carn"):
        net = _official(name)
        assert [b.nf if hasattr(b, "nf") else b.d for b in net.branches] in ([16, 36, 56], [36, 52, 64])


def test_bad_arguments():
    with pytest.raises(ValueError, match="scale"):
        models.build("classsr_fsrcnn", 2)
    with pytest.raises(ValueError, match="stride"):
        models.build("classsr_carn", 4, stride=40)
    with pytest.raises(ValueError, match="patch_size"):
        models.build("classsr_fsrcnn", 4, patch_size=30)


def test_flop_counts_match_paper():
    assert [round(fsrcnn_branch_mflops(d)) for d in (16, 36, 56)] == [141, 305, 468]


def test_report_runs_on_a_small_image():
    from sr_ops.bench import classsr_report

    model, _ = classsr_report.build_model()
    x = classsr_report.test_image(64)
    assert x.shape == (1, 3, 64, 64) and x.std() > 0
    result = classsr_report.measure(model, x, repeats=1)
    assert sum(result["counts"]) == result["n"] == 9
    assert 0 < result["flop_ratio"] <= 1
    assert "FLOPs saved" in classsr_report.format_line(result, 64, True)


def test_backward_through_dispatch(seed):
    """With autograd on, the branches take the differentiable path and gradients reach the
    input and every branch that got sub-images."""
    net = _random("classsr_fsrcnn", seed)
    x = torch.rand(1, 3, 40, 61, requires_grad=True)
    n = net.classify(x.detach())[1].shape[0]
    ids = torch.arange(n) % 3
    y = net(x, ids)
    with torch.no_grad():
        torch.testing.assert_close(y, net(x, ids), rtol=1e-5, atol=1e-6)
    y.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for branch in net.branches:
        assert branch.head_conv[0].weight.grad.abs().sum() > 0
