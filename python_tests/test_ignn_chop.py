"""IGNN's official test chop: quadrants (and their son crops) pasted back exactly."""
import pytest
import torch
import torch.nn.functional as F

from sr_ops import models
from sr_ops.models.ignn_chop import official_chop


def _nearest(t, s):
    return F.interpolate(t, scale_factor=s, mode="nearest")


@pytest.mark.parametrize("scale,g,H,W", [(2, 2, 150, 170), (3, 3, 131, 97), (4, 2, 101, 120), (2, 2, 400, 260)])
def test_paste_is_exact_for_pointwise_models(scale, g, H, W, seed):
    """A model that upscales each pixel on its own (of x, or of its son crop) must come
    back as the whole-image result: any slip in the crop or paste arithmetic shows."""
    x = torch.rand(1, 3, H, W)
    son = torch.rand(1, 3, H // g, W // g)
    calls = []

    def from_x(s, t):
        calls.append(tuple(t.shape[-2:]))
        assert tuple(s.shape[-2:]) == (t.shape[-2] // g, t.shape[-1] // g)  # the son crop matches
        return _nearest(t, scale)

    assert torch.equal(official_chop(from_x, son, x, scale, g), _nearest(x, scale))
    assert len(calls) in (4, 16, 64) and max(h * w for h, w in calls) < 40000 + 2 * 12 * (H + W)

    def from_son(s, t):  # son pixels at the x grid: quadrant crops land on multiples of g
        up = _nearest(s, scale * g)
        return F.pad(up, (0, scale * t.shape[-1] - up.shape[-1], 0, scale * t.shape[-2] - up.shape[-2]))

    want = F.pad(_nearest(son, scale * g), (0, scale * (W % g), 0, scale * (H % g)))
    got = official_chop(from_son, son, x, scale, g)
    # the pasted inner parts: all but the far border strips the son does not cover
    assert torch.equal(got[..., :scale * (H - H % g), :scale * (W - W % g)],
                       want[..., :scale * (H - H % g), :scale * (W - W % g)])


def test_model_option(seed):
    net = models.build("ignn", 2, n_resblocks=2, n_feats=16, chop="official")
    whole = models.build("ignn", 2, n_resblocks=2, n_feats=16)
    whole.load_state_dict(net.state_dict())
    x = torch.rand(1, 3, 130, 110)
    with torch.no_grad():
        chopped, plain = net(x), whole(x)
    assert chopped.shape == plain.shape == (1, 3, 260, 220)
    assert (chopped - plain).abs().max() > 0  # per-quadrant graphs: not the whole-image result
    assert (chopped - plain).abs().mean() < 0.05
    with pytest.raises(ValueError, match="chop"):
        models.build("ignn", 2, n_resblocks=2, n_feats=16, chop="quadrants")
    with pytest.raises(ValueError, match="pick one"):
        models.build("ignn", 2, n_resblocks=2, n_feats=16, chop="official", tile=64)


def test_eval_takes_chop(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from sr_ops.__main__ import main

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")
    assert main(["eval", "--model", "rt4ksr", "--scale", "2", "--dataset", str(tmp_path), "--chop", "official"]) == 2
    assert "chop" in capsys.readouterr().err  # a model without a chop says so in one line
    assert main(["eval", "--model", "ignn", "--scale", "2", "--dataset", str(tmp_path), "--chop", "official",
                 "--tile", "32"]) == 2
    assert "pick one" in capsys.readouterr().err
