"""EDSR / MDSR: official state-dict layout (no weights here, so checkpoints are built in the
official naming and loaded strictly), parameter counts, forward against a functional
re-statement, odd sizes, round trips and bad checkpoints."""
import pytest
import torch
import torch.nn.functional as F

from sr_ops import models
from sr_ops.models.edsr import EDSR, MDSR, load_state_dict_strict
from sr_ops.models.edsr_blocks import DIV2K_RGB_MEAN, MeanShift, ResBlock, Upsampler

# ---------------------------------------------------------------- official layout, derived
# independently of the model classes from EDSR-PyTorch's edsr.py / mdsr.py / common.py


def _conv(shapes, name, cin, cout, k):
    shapes[f"{name}.weight"] = (cout, cin, k, k)
    shapes[f"{name}.bias"] = (cout,)


def _upsampler(shapes, prefix, scale, c):
    if scale == 3:
        _conv(shapes, f"{prefix}.0", c, 9 * c, 3)
    else:  # log2(scale) conv + PixelShuffle(2) pairs: convs at even indices
        for i in range(scale.bit_length() - 1):
            _conv(shapes, f"{prefix}.{2 * i}", c, 4 * c, 3)


def _common(shapes, n_res, c, k=3):
    for sign in ("sub_mean", "add_mean"):
        _conv(shapes, sign, 3, 3, 1)
    _conv(shapes, "head.0", 3, c, 3)
    for i in range(n_res):
        _conv(shapes, f"body.{i}.body.0", c, c, k)
        _conv(shapes, f"body.{i}.body.2", c, c, k)
    _conv(shapes, f"body.{n_res}", c, c, 3)


def official_edsr_shapes(n_res, c, scale):
    shapes = {}
    _common(shapes, n_res, c)
    _upsampler(shapes, "tail.0", scale, c)
    _conv(shapes, "tail.1", c, 3, 3)
    return shapes


def official_mdsr_shapes(n_res, c, scales=(2, 3, 4)):
    shapes = {}
    _common(shapes, n_res, c)
    for i, s in enumerate(scales):
        for j in (0, 1):
            _conv(shapes, f"pre_process.{i}.{j}.body.0", c, c, 5)
            _conv(shapes, f"pre_process.{i}.{j}.body.2", c, c, 5)
        _upsampler(shapes, f"upsample.{i}", s, c)
    _conv(shapes, "tail.0", c, 3, 3)
    return shapes


CONFIGS = {"edsr_baseline": (16, 64), "edsr": (32, 256), "mdsr_baseline": (16, 64), "mdsr": (80, 64)}


def _official_shapes(name, scale):
    n_res, c = CONFIGS[name]
    if name.startswith("mdsr"):
        return official_mdsr_shapes(n_res, c)
    return official_edsr_shapes(n_res, c, scale)


def _random_state(shapes, seed):
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(s, generator=g) * 0.02 for k, s in shapes.items()}
    for sign, mul in (("sub_mean", -1), ("add_mean", 1)):  # mean shifts as released
        state[f"{sign}.weight"] = torch.eye(3).view(3, 3, 1, 1)
        state[f"{sign}.bias"] = mul * 255 * torch.tensor(DIV2K_RGB_MEAN)
    return state


def test_registry():
    assert {"edsr_baseline", "edsr", "mdsr_baseline", "mdsr"} <= set(models.available())


@pytest.mark.parametrize("name,scale", [("edsr_baseline", 2), ("edsr_baseline", 3), ("edsr_baseline", 4),
                                        ("edsr", 4),
                                        ("mdsr_baseline", 2), ("mdsr", 4)])
def test_official_keys_load_strictly(name, scale, seed):
    shapes = _official_shapes(name, scale)
    net = models.build(name, scale)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == shapes
    state = _random_state(shapes, seed)
    loaded = models.build(name, scale, checkpoint=state)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, state[k]), k


# published sizes: EDSR-baseline 1.37M (x2), EDSR 43M (x4), MDSR 8.0M; the 24 mean-shift
# constants are in the state dict but not learnt
@pytest.mark.parametrize("name,scale,learnt", [
    ("edsr_baseline", 2, 1_369_859), ("edsr_baseline", 3, 1_554_499), ("edsr_baseline", 4, 1_517_571),
    ("edsr", 2, 40_729_603), ("edsr", 4, 43_089_923), ("mdsr_baseline", 2, 3_227_203), ("mdsr", 3, 7_953_987)])
def test_parameter_counts(name, scale, learnt):
    net = models.build(name, scale)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == learnt
    assert sum(v.numel() for v in net.state_dict().values()) == learnt + 24


def test_full_edsr_uses_residual_scaling():
    net = models.build("edsr", 2)
    blocks = [m for m in net.modules() if isinstance(m, ResBlock)]
    assert len(blocks) == 32 and all(b.res_scale == 0.1 for b in blocks)
    baseline = models.build("edsr_baseline", 2)
    assert all(b.res_scale == 1.0 for b in baseline.modules() if isinstance(b, ResBlock))


# ---------------------------------------------------------------- forward


def _functional_edsr(state, x, n_res, scale, res_scale):
    """EDSR forward written from the paper's equations on the raw state dict."""
    conv = lambda t, name: F.conv2d(t, state[f"{name}.weight"], state[f"{name}.bias"],  # noqa: E731
                                    padding=state[f"{name}.weight"].shape[-1] // 2)
    mean = torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1) * 255
    f = conv(x * 255 - mean, "head.0")
    r = f
    for i in range(n_res):
        r = r + res_scale * conv(F.relu(conv(r, f"body.{i}.body.0")), f"body.{i}.body.2")
    r = conv(r, f"body.{n_res}") + f
    if scale == 3:
        r = F.pixel_shuffle(conv(r, "tail.0.0"), 3)
    else:
        for i in range(scale.bit_length() - 1):
            r = F.pixel_shuffle(conv(r, f"tail.0.{2 * i}"), 2)
    return ((conv(r, "tail.1") + mean) / 255).clamp(0, 1)


@pytest.mark.parametrize("scale,res_scale", [(2, 1.0), (3, 0.1), (4, 0.1)])
def test_forward_matches_functional(scale, res_scale, seed):
    net = EDSR(scale, n_resblocks=3, n_feats=8, res_scale=res_scale).eval()
    shapes = official_edsr_shapes(3, 8, scale)
    state = _random_state(shapes, seed)
    state = {k: (v * 5 if "mean" not in k else v) for k, v in state.items()}  # visible residuals
    load_state_dict_strict(net, state)
    x = torch.rand(2, 3, 7, 5)
    with torch.no_grad():
        out = net(x)
    assert out.shape == (2, 3, 7 * scale, 5 * scale)
    torch.testing.assert_close(out, _functional_edsr(state, x, 3, scale, res_scale), rtol=1e-4, atol=1e-5)
    assert out.std() > 0.01  # a non-trivial image, not saturated


@pytest.mark.parametrize("name", ["edsr_baseline", "mdsr_baseline"])
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("hw", [(1, 1), (7, 5), (6, 9)])
def test_odd_shapes(name, scale, hw, seed):
    net = models.build(name, scale)
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        out = net(x)
    assert out.shape == (2, 3, scale * hw[0], scale * hw[1])
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    with torch.no_grad():  # batch items are independent
        torch.testing.assert_close(net(x[1:]), out[1:], rtol=1e-4, atol=1e-5)


def test_mean_shift_inverse_pair(seed):
    x = torch.rand(1, 3, 4, 5) * 255
    sub, add = MeanShift(255, sign=-1), MeanShift(255, sign=1)
    torch.testing.assert_close(sub(x), x - 255 * torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1))
    torch.testing.assert_close(add(sub(x)), x)
    assert not sub.weight.requires_grad and not sub.bias.requires_grad
    std = MeanShift(1.0, (0.5, 0.5, 0.5), (2.0, 4.0, 0.5))
    torch.testing.assert_close(std(x), (x - 0.5) / torch.tensor([2.0, 4.0, 0.5]).view(1, 3, 1, 1))


def test_block_argument_errors():
    with pytest.raises(ValueError, match="scale"):
        Upsampler(5, 8)
    with pytest.raises(ValueError, match="sign"):
        MeanShift(255, sign=0)
    with pytest.raises(ValueError, match="kernel_size"):
        ResBlock(8, 4)
    with pytest.raises(ValueError, match="scale"):
        models.build("edsr_baseline", 5)
    with pytest.raises(ValueError, match="scale"):
        models.build("mdsr_baseline", 8)


def test_input_errors():
    net = models.build("edsr_baseline", 2)
    with pytest.raises(ValueError, match="x must be"):
        net(torch.rand(1, 1, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        net(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


# ---------------------------------------------------------------- MDSR branches


def test_mdsr_one_checkpoint_every_scale(tmp_path, seed):
    state = _random_state(official_mdsr_shapes(16, 64), seed)
    path = tmp_path / "mdsr_baseline.pt"
    torch.save(state, path)
    x = torch.rand(1, 3, 6, 5)
    outs = {}
    for s in (2, 3, 4):
        net = models.build("mdsr_baseline", s, checkpoint=path)
        assert net.scale == s
        with torch.no_grad():
            outs[s] = net(x)
        assert outs[s].shape == (1, 3, 6 * s, 5 * s)
    # switching branch on one model gives the branch's own result
    net = models.build("mdsr_baseline", 2, checkpoint=path).set_scale(4)
    with torch.no_grad():
        torch.testing.assert_close(net(x), outs[4])
    with pytest.raises(ValueError, match="scale"):
        net.set_scale(5)


def test_mdsr_branch_matters(seed):
    state = _random_state(official_mdsr_shapes(2, 8), seed)
    net = MDSR(2, n_resblocks=2, n_feats=8).eval()
    load_state_dict_strict(net, state)
    x = torch.rand(1, 3, 5, 5)
    with torch.no_grad():
        a = net(x)
        state["pre_process.1.0.body.0.weight"] += 1.0  # the x3 branch: no effect on x2
        load_state_dict_strict(net, state)
        torch.testing.assert_close(net(x), a)
        state["pre_process.0.0.body.0.weight"] += 1.0
        load_state_dict_strict(net, state)
        assert not torch.allclose(net(x), a)


# ---------------------------------------------------------------- checkpoints


def test_state_dict_round_trip_weights_only(tmp_path, seed):
    net = models.build("edsr_baseline", 3, checkpoint=_random_state(official_edsr_shapes(16, 64, 3), seed))
    path = tmp_path / "edsr_baseline_x3.pt"
    torch.save(net.state_dict(), path)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert set(raw) == set(net.state_dict())
    again = models.build("edsr_baseline", 3, checkpoint=path)
    dataparallel = {"state_dict": {f"module.{k}": v for k, v in raw.items()}}
    wrapped = models.build("edsr_baseline", 3, checkpoint=dataparallel)
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        ref = net(x)
        torch.testing.assert_close(again(x), ref, rtol=0, atol=0)
        torch.testing.assert_close(wrapped(x), ref, rtol=0, atol=0)


def test_bad_checkpoints_name_keys(seed):
    good = _random_state(official_edsr_shapes(16, 64, 2), seed)
    missing = {k: v for k, v in good.items() if k != "body.7.body.2.weight"}
    with pytest.raises(KeyError, match=r"body\.7\.body\.2\.weight"):
        models.build("edsr_baseline", 2, checkpoint=missing)
    extra = dict(good, **{"tail.0.2.weight": torch.zeros(256, 64, 3, 3)})
    with pytest.raises(KeyError, match=r"unexpected keys \['tail\.0\.2\.weight'\]"):
        models.build("edsr_baseline", 2, checkpoint=extra)
    # an x4 checkpoint has an extra upsampling conv; x3's first one is 9C wide
    x3 = _random_state(official_edsr_shapes(16, 64, 3), seed)
    with pytest.raises(ValueError,
                       match=r"tail\.0\.0\.weight: checkpoint \(576, 64, 3, 3\) vs model \(256, 64, 3, 3\)"):
        models.build("edsr_baseline", 2, checkpoint=x3)
    with pytest.raises(TypeError, match="checkpoint"):
        models.build("edsr_baseline", 2, checkpoint=[1, 2])
    with pytest.raises(KeyError, match="missing keys"):  # an EDSR checkpoint is no MDSR one
        models.build("mdsr_baseline", 2, checkpoint=good)
