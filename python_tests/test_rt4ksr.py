"""RT4KSR model: official checkpoint loading, re-parameterisation, odd sizes, PSNR."""
from pathlib import Path

import pytest
import torch

import sr_ops
from sr_ops import models
from sr_ops.io import read_image, to_uint8
from sr_ops.metrics import psnr
from sr_ops.models import blocks
from sr_ops.models.reparam import fold_expand_fea_reduce
from sr_ops.models.rt4ksr import RT4KSR, RepResBlock, ResBlock, load_official_state_dict

ASSETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "assets"
WEIGHTS = ASSETS / "weights" / "rt4ksr"
SELFEXSR = ASSETS / "datasets" / "SelfExSR"


def _checkpoint(scale: int) -> Path:
    path = WEIGHTS / f"rt4ksr_x{scale}.pth"
    if not path.is_file():
        pytest.skip(f"RT4KSR weights not found at {path} (shared assets absent)")
    return path


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial random weights everywhere (default init leaves LayerNorm at 1/0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


# ---------------------------------------------------------------- registry


def test_registry_lists_rt4ksr():
    assert "rt4ksr" in models.available()
    with pytest.raises(ValueError, match="unknown model"):
        models.build("no_such_model", 2)


def test_build_defaults_to_eval_and_reparameterised():
    net = models.build("rt4ksr", 2)
    assert not net.training
    assert net.is_reparameterized
    assert not any(isinstance(m, ResBlock) for m in net.modules())
    train_graph = models.build("rt4ksr", 2, reparameterize=False)
    assert sum(isinstance(m, ResBlock) for m in train_graph.modules()) == 6  # hfb, 4 body, tail


# ---------------------------------------------------------------- re-parameterisation


@pytest.mark.parametrize("identity", [True, False])
def test_fold_single_block_matches(identity):
    torch.manual_seed(1)
    block = ResBlock(8, ratio=2)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.3)
    x = torch.randn(2, 8, 13, 10)
    weight, bias = fold_expand_fea_reduce(block.expand_conv, block.fea_conv, block.reduce_conv,
                                          identity=identity)
    with torch.no_grad():
        ref = block(x) - (0 if identity else x)
        out = torch.nn.functional.conv2d(x, weight, bias, padding=1)
    assert (out - ref).abs().max().item() <= 1e-5


def test_reparameterize_random_model_matches():
    torch.manual_seed(2)
    net = RT4KSR(2, clamp=False).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x = torch.rand(2, 3, 20, 26)
    with torch.no_grad():
        ref = net(x)
        models.reparameterize(net)
        out = net(x)
    assert net.is_reparameterized
    assert sum(isinstance(m, RepResBlock) for m in net.modules()) == 6
    assert (out - ref).abs().max().item() <= 1e-5
    # idempotent
    models.reparameterize(net)
    with torch.no_grad():
        assert torch.equal(net(x), out)


@pytest.mark.parametrize("scale", [2, 3])
def test_reparameterize_official_weights_matches(scale):
    ckpt = _checkpoint(scale)
    train = models.build("rt4ksr", scale, ckpt, reparameterize=False, clamp=False)
    rep = models.build("rt4ksr", scale, ckpt, clamp=False)
    torch.manual_seed(scale)
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        diff = (train(x) - rep(x)).abs().max().item()
    assert diff <= 1e-5, diff


def test_reparameterised_state_dict_roundtrip():
    """A checkpoint saved from the re-parameterised model loads into a fresh build."""
    torch.manual_seed(3)
    net = _randomise(models.build("rt4ksr", 3, reparameterize=False))
    models.reparameterize(net)
    state = net.state_dict()
    assert any(".rep_conv." in k for k in state)
    again = models.build("rt4ksr", 3, state, reparameterize=False)  # switches itself
    x = torch.rand(1, 3, 10, 12)
    with torch.no_grad():
        assert torch.equal(again(x), net(x))


# ---------------------------------------------------------------- checkpoint loading


def test_official_checkpoint_keys_load_strictly():
    ckpt = _checkpoint(2)
    state = torch.load(ckpt, weights_only=True, map_location="cpu")["state_dict"]
    net = RT4KSR(2)
    assert sorted(k[len("module."):] for k in state) == sorted(net.state_dict())
    load_official_state_dict(net, state)
    assert torch.equal(net.upsample[0].weight, state["module.upsample.0.weight"])
    assert net.gamma.item() == 0.0


def test_strict_load_names_missing_and_unexpected_keys():
    state = RT4KSR(2).state_dict()
    del state["body.1.norm.weight"]
    state["body.9.extra.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match=r"body\.1\.norm\.weight") as info:
        models.build("rt4ksr", 2, state)
    assert "body.9.extra.weight" in str(info.value)
    assert "missing" in str(info.value) and "unexpected" in str(info.value)


def test_wrong_scale_checkpoint_names_shape_mismatch():
    state = RT4KSR(3).state_dict()
    with pytest.raises(ValueError, match=r"upsample\.0\.weight"):
        models.build("rt4ksr", 2, state)


# ---------------------------------------------------------------- shapes and inputs


@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("hw", [(17, 23), (16, 9), (1, 1), (1, 6), (5, 2)])
@pytest.mark.parametrize("reparameterize", [True, False])
def test_forward_shapes_any_size(scale, hw, reparameterize):
    net = models.build("rt4ksr", scale, reparameterize=reparameterize)
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 3, scale * hw[0], scale * hw[1])
    assert y.min() >= 0 and y.max() <= 1


def test_odd_size_is_crop_of_padded_run():
    torch.manual_seed(4)
    net = models.build("rt4ksr", 2, clamp=False)
    x = torch.rand(1, 3, 11, 14)
    padded = torch.nn.functional.pad(x, (0, 0, 0, 1), mode="reflect")
    with torch.no_grad():
        assert torch.allclose(net(x), net(padded)[..., :22, :], atol=0, rtol=0)


def test_bad_inputs():
    net = models.build("rt4ksr", 2)
    with pytest.raises(ValueError, match="x must"):
        net(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="x must"):
        net(torch.rand(1, 1, 8, 8))
    with pytest.raises(TypeError, match="x must"):
        net(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="scale"):
        models.build("rt4ksr", 0)


# ---------------------------------------------------------------- published numbers


def _mean_psnr(net, folder: Path, scale: int) -> tuple[float, int]:
    scores = []
    for hr_path in sorted(folder.glob("*_HR.png")):
        hr = read_image(hr_path)
        lr = to_uint8(sr_ops.imresize(hr, 1 / scale)).float() / 255
        with torch.no_grad():
            sr = net(lr[None])[0]
        assert sr.shape == hr.shape
        scores.append(psnr(sr, hr, crop_border=scale).item())
    return sum(scores) / max(len(scores), 1), len(scores)


@pytest.mark.parametrize("dataset,scale,expected,count", [
    ("Set5", 2, 36.15, 5),
    ("Set5", 3, 32.20, 5),
    pytest.param("Set14", 2, 32.09, 14, marks=pytest.mark.slow),
])
def test_psnr_matches_reference(dataset, scale, expected, count):
    ckpt = _checkpoint(scale)
    folder = SELFEXSR / dataset / f"image_SRF_{scale}"
    if not folder.is_dir():
        pytest.skip(f"SelfExSR {dataset} images not found at {folder} (shared assets absent)")
    net = models.build("rt4ksr", scale, ckpt)
    mean, n = _mean_psnr(net, folder, scale)
    assert n == count
    assert abs(mean - expected) < 0.05, f"RT4KSR {dataset} x{scale}: {mean:.4f} dB"


def test_psnr_train_time_graph_set5_x2():
    ckpt = _checkpoint(2)
    folder = SELFEXSR / "Set5" / "image_SRF_2"
    if not folder.is_dir():
        pytest.skip(f"SelfExSR Set5 images not found at {folder} (shared assets absent)")
    net = models.build("rt4ksr", 2, ckpt, reparameterize=False)
    mean, _ = _mean_psnr(net, folder, 2)
    assert abs(mean - 36.15) < 0.05, f"RT4KSR train-time Set5 x2: {mean:.4f} dB"


def test_layernorm2d_module_matches_definition():
    from sr_ops.models.blocks import LayerNorm2d

    torch.manual_seed(5)
    norm = LayerNorm2d(6)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 6, 5, 7) * 3 + 1
    mu = x.mean(1, keepdim=True)
    var = x.var(1, unbiased=False, keepdim=True)
    ref = (x - mu) / torch.sqrt(var + 1e-6) * norm.weight[:, None, None] + norm.bias[:, None, None]
    with torch.no_grad():
        assert torch.allclose(norm(x), ref, atol=1e-5, rtol=1e-5)
    assert sorted(n for n, _ in norm.named_parameters()) == ["bias", "weight"]


def test_high_frequency_branch_option_runs():
    """forget=True (unused by the released weights) adds the hfb branch; gamma scales the body."""
    torch.manual_seed(6)
    plain = _randomise(models.build("rt4ksr", 2, reparameterize=False, clamp=False))
    hfb = models.build("rt4ksr", 2, plain.state_dict(), reparameterize=False, clamp=False,
                       forget=True)
    x = torch.rand(1, 3, 9, 12)
    with torch.no_grad():
        a, b = plain(x), hfb(x)
        models.reparameterize(hfb)
        c = hfb(x)
    assert b.shape == a.shape == (1, 3, 18, 24)
    assert not torch.allclose(a, b)
    assert (b - c).abs().max().item() <= 1e-5


@pytest.mark.parametrize("clamp", [True, False])
@pytest.mark.parametrize("scale", [2, 3])
def test_inference_fast_path_equals_autograd_path(scale, clamp):
    # No autograd: one-pass unshuffle, GELU in place, one-pass shuffle + clamp + NCHW copy.
    # With an input that requires grad: the plain module calls. Same values either way.
    net = _randomise(models.build("rt4ksr", scale, clamp=clamp))
    x = torch.rand(2, 3, 14, 10) * 1.4 - 0.2  # outputs past [0, 1], so clamping shows
    with torch.no_grad():
        fast = net(x)
    slow = net(x.clone().requires_grad_(True)).detach()
    assert fast.is_contiguous() and fast.shape == slow.shape
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-6)
    assert clamp == bool(fast.min() >= 0 and fast.max() <= 1)


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 2e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("grad", [False, True], ids=["inference", "autograd"])
def test_gelu_fused_into_next_norm_equals_separate_steps(dtype, atol, grad, monkeypatch):
    # Each block's GELU runs inside the next norm (sr_ops.gelu_layernorm2d); the official
    # order, GELU then LayerNorm2d, gives the same image, and the same input gradient.
    net = _randomise(models.build("rt4ksr", 2, clamp=False)).to(dtype)
    assert net._gelu_fusable()
    monkeypatch.setattr(blocks, "USE_FUSED_CONV3X3", False)  # else the norms run in the convs (below)
    x = (torch.rand(1, 3, 12, 18, dtype=dtype) * 1.4 - 0.2).requires_grad_(grad)
    calls = []
    real = sr_ops.gelu_layernorm2d
    monkeypatch.setattr(sr_ops, "gelu_layernorm2d", lambda *a: calls.append(1) or real(*a))
    fused = net(x)
    assert len(calls) == len(net.body)  # every block's GELU; the last into the tail's norm
    monkeypatch.setattr(type(net), "_gelu_fusable", lambda self: False)
    plain = net(x)
    torch.testing.assert_close(fused, plain, rtol=0, atol=atol)
    if grad:
        g = torch.randn_like(fused)
        (gf,) = torch.autograd.grad(fused, x, g)
        (gp,) = torch.autograd.grad(plain, x, g)
        torch.testing.assert_close(gf, gp, rtol=0, atol=atol * 10)


@pytest.mark.parametrize("grad", [False, True], ids=["inference", "autograd"])
def test_norms_fused_into_convs_equal_separate_steps(grad, monkeypatch):
    # float32 on the CPU: head -> norm and each block's conv -> GELU -> next norm are
    # sr_ops.conv3x3_layernorm2d (five calls); the official sequence of modules gives the
    # same image and input gradient within float32 rounding.
    net = _randomise(models.build("rt4ksr", 2, clamp=False))
    x = (torch.rand(1, 3, 12, 18) * 1.4 - 0.2).requires_grad_(grad)
    assert net._convs_norms_fusable(x)
    calls = []
    real = sr_ops.conv3x3_layernorm2d
    monkeypatch.setattr(sr_ops, "conv3x3_layernorm2d", lambda *a, **k: calls.append(1) or real(*a, **k))
    fused = net(x)
    assert len(calls) == len(net.body) + 1
    monkeypatch.setattr(blocks, "USE_FUSED_CONV3X3", False)
    monkeypatch.setattr(blocks, "USE_FUSED_LAYERNORM", False)
    plain = net(x)
    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-4)
    if grad:
        g = torch.randn_like(fused)
        (gf,) = torch.autograd.grad(fused, x, g)
        (gp,) = torch.autograd.grad(plain, x, g)
        torch.testing.assert_close(gf, gp, rtol=1e-3, atol=1e-3)
