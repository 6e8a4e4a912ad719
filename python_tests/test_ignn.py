"""IGNN: official key layout, checkpoint errors, forward shapes, and the graph path against
an independent composition of the reference ops that follows the official code's layout
(pixel-shuffled, zero-padded region source; HR edge features; softmax at HR)."""
import pytest
import torch
import torch.nn.functional as F

import sr_ops
from sr_ops import models, reference
from sr_ops.models.ignn import IGNN, load_official
from sr_ops.models.ignn_graph import GCNBlock, construct_graph, region_maps

TINY = dict(n_resblocks=2, n_feats=8)


# ------------------------------------------------------------ official naming, built by hand


def official_shapes(scale, n_resblocks=32, n_feats=256):
    """Key -> shape of sczhou/IGNN's ``IGNN().state_dict()`` (models/IGNN.py, submodules.py,
    VGG19.py), written out from the official code, independent of sr_ops.models."""
    g, n = (2 if scale == 4 else scale), n_feats
    sd = {}

    def conv(name, cin, cout, ks):
        sd[f"{name}.weight"], sd[f"{name}.bias"] = (cout, cin, ks, ks), (cout,)

    conv("sub_mean", 3, 3, 1)
    conv("add_mean", 3, 3, 1)
    for pre in ("vggnet", "graph.embedcnn"):  # one module, registered twice
        conv(f"{pre}.sub_mean", 3, 3, 1)
        conv(f"{pre}.model.0", 3, 64, 3)
        conv(f"{pre}.model.2", 64, 64, 3)
    conv("head.0", 3, n, 3)
    for i in range(n_resblocks // 2):
        conv(f"body1.{i}.body.0", n, n, 3)
        conv(f"body1.{i}.body.2", n, n, 3)
    conv("gcn.knn_downsample.0.0", n, n, 5)
    conv("gcn.knn_downsample.1.0", n, n, 3)
    conv("gcn.knn_downsample.2.0", n, n, 3)
    for w in ("lr", "hr"):
        conv(f"gcn.weightnet_{w}.0.0", 64, 64, 1)
        conv(f"gcn.weightnet_{w}.1.body.0", 64, 64, 1)
        conv(f"gcn.weightnet_{w}.1.body.2", 64, 64, 1)
        conv(f"gcn.weightnet_{w}.2.0", 64, 1, 1)
    conv("fuse_b.0.0", 2 * n, n, 3)
    conv("fuse_b.1.0", n, n, 3)
    rest = n_resblocks - n_resblocks // 2
    for i in range(rest):
        conv(f"body2.{i}.body.0", n, n, 3)
        conv(f"body2.{i}.body.2", n, n, 3)
    conv(f"body2.{rest}.0", n, n, 3)
    conv("upsample.0", n, g * g * n, 3)
    conv("fuse_up.0.0", 2 * n, n, 3)
    conv("fuse_up.1.0", n, n, 3)
    if scale == 4:
        conv("tail.0.0", n, 4 * n, 3)
        conv("tail.1.0", n, 3, 3)
    else:
        conv("tail.0.0", n, 3, 3)
    return sd


def official_checkpoint(scale, seed=0, **cfg):
    """A checkpoint as core/train.py saves it: DataParallel prefix, wrapped, VGG copies equal."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_shapes(scale, **cfg).items():
        twin = key.replace("graph.embedcnn.", "vggnet.")
        state[key] = state[twin] if twin in state else torch.randn(shape, generator=g) * 0.02
    return {"epoch_idx": 1, "best_PSNR": 0.0, "best_epoch": 1,
            "net_state_dict": {f"module.{k}": v for k, v in state.items()}}


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_default_config_has_official_keys_and_shapes(scale):
    with torch.device("meta"):
        model = IGNN(scale)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == official_shapes(scale)


def test_default_config_loads_official_checkpoint_strictly():
    ckpt = official_checkpoint(2)
    model = models.build("ignn", 2, ckpt)
    sd = ckpt["net_state_dict"]
    assert torch.equal(model.body2[5].body[2].weight, sd["module.body2.5.body.2.weight"])
    assert torch.equal(model.gcn.weightnet_hr[1].body[0].weight, sd["module.gcn.weightnet_hr.1.body.0.weight"])
    assert model.graph.embedcnn is model.vggnet


def test_tiny_checkpoint_roundtrip_changes_output(seed):
    x = torch.rand(1, 3, 19, 20)
    model = models.build("ignn", 3, **TINY)
    with torch.no_grad():
        before = model(x)
        load_official(model, official_checkpoint(3, seed=1, n_resblocks=2, n_feats=8))
        after = model(x)
    assert not torch.allclose(before, after)


def test_bad_checkpoints_name_the_keys():
    good = official_checkpoint(2, n_resblocks=2, n_feats=8)["net_state_dict"]
    model = IGNN(2, **TINY)
    missing = {k: v for k, v in good.items() if "fuse_up.1.0.bias" not in k}
    with pytest.raises(KeyError, match=r"missing keys \['fuse_up.1.0.bias'\]"):
        load_official(model, missing)
    extra = dict(good, **{"module.gcn.extra.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="gcn.extra.weight"):
        load_official(model, extra)
    x3 = official_checkpoint(3, n_resblocks=2, n_feats=8)
    with pytest.raises(ValueError, match=r"upsample.0.weight: checkpoint \(72, 8, 3, 3\)"):
        load_official(model, x3)
    differ = dict(good)
    differ["module.vggnet.model.0.bias"] = differ["module.vggnet.model.0.bias"] + 1
    with pytest.raises(ValueError, match="vggnet.model.0.bias and graph.embedcnn.model.0.bias"):
        load_official(model, differ)
    with pytest.raises(TypeError, match="checkpoint"):
        load_official(model, 3.0)


def test_one_copy_of_the_embedding_is_enough():
    good = official_checkpoint(2, n_resblocks=2, n_feats=8)["net_state_dict"]
    model = load_official(IGNN(2, **TINY), {k: v for k, v in good.items() if "graph.embedcnn" not in k})
    assert torch.equal(model.graph.embedcnn.model[2].weight, good["module.vggnet.model.2.weight"])


def test_torchvision_vgg_weights(seed):
    tv = {"features.0.weight": torch.randn(64, 3, 3, 3), "features.0.bias": torch.randn(64),
          "features.2.weight": torch.randn(64, 64, 3, 3), "features.2.bias": torch.randn(64),
          "features.5.weight": torch.randn(128, 64, 3, 3), "classifier.6.bias": torch.randn(1000)}
    model = models.build("ignn", 2, vgg=tv, **TINY)
    assert torch.equal(model.vggnet.model[2].weight, tv["features.2.weight"])
    load_official(model, {k: -v for k, v in tv.items()})  # load_official recognises the naming
    assert torch.equal(model.graph.embedcnn.model[0].bias, -tv["features.0.bias"])
    with pytest.raises(KeyError, match=r"features.2.bias"):
        load_official(model, {k: v for k, v in tv.items() if k != "features.2.bias"})
    bad = dict(tv, **{"features.0.weight": torch.randn(64, 3, 5, 5)})
    with pytest.raises(ValueError, match="features.0.weight"):
        load_official(model, bad)


# ------------------------------------------------------------ forward


@pytest.mark.parametrize("scale,size", [(2, (15, 22)), (2, (16, 16)), (3, (19, 17)), (3, (18, 24)),
                                        (4, (13, 18))])
def test_forward_shapes(scale, size, seed):
    model = models.build("ignn", scale, **TINY)
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 3, scale * size[0], scale * size[1])
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    assert y.std() > 0


def test_forward_matches_reference_backend(seed):
    model = models.build("ignn", 2, **TINY)
    x = torch.rand(1, 3, 17, 20)
    with torch.no_grad():
        fused = model(x)
        with sr_ops.use_backend("reference"):
            ref = model(x)
    torch.testing.assert_close(fused, ref, rtol=1e-4, atol=1e-5)


def test_bad_inputs():
    model = IGNN(2, **TINY)
    with pytest.raises(ValueError, match="x must be an RGB batch"):
        model(torch.rand(1, 1, 16, 16))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="too small"):
        model(torch.rand(1, 3, 6, 30))
    with pytest.raises(ValueError, match="scale must be 2, 3 or 4"):
        IGNN(5)
    with pytest.raises(ValueError, match="n_feats"):
        IGNN(2, n_feats=0)


# ------------------------------------------------------------ graph path vs reference composition


def _pad(x, p=3, t=2):
    H, W = x.shape[-2:]
    return F.pad(x, (0, (-(W - p)) % t, 0, (-(H - p)) % t))


def official_regions(y, idx, key_hw, s, p=3, t=2):
    """Every neighbour's HR map (B, k, C, sH, sW), the official way with reference ops."""
    B, C, H, W = y.shape
    Hk, Wk = key_hw
    canvas = y.new_zeros(B, C, s * Hk, s * Wk)  # = pixelshuffle_down(y), zero-padded, unshuffled
    canvas[..., :s * (H // s), :s * (W // s)] = y[..., :s * (H // s), :s * (W // s)]
    yp = _pad(y, p, t)
    m, k, P = idx.shape[1], idx.shape[2], s * p
    query = F.unfold(yp, p, stride=t).view(B, C, p, p, m).permute(0, 4, 1, 2, 3)
    rows, cols = reference.vertex_map(idx, key_hw, s, p, t)
    ar = torch.arange(P)
    r_i, c_i = rows[..., None] + ar, cols[..., None] + ar  # (B, m, k, P)
    b = torch.arange(B)[:, None, None, None, None]
    nb = canvas.permute(0, 2, 3, 1)[b, r_i[..., :, None], c_i[..., None, :]].permute(0, 1, 2, 5, 3, 4)
    z = reference.adapn(nb, query)
    Hp, Wp = yp.shape[-2:]
    folded = reference.patch2img(z.transpose(1, 2).reshape(B * k, m, C, P, P), (s * Hp, s * Wp), P, s * t)
    return folded.view(B, k, C, s * Hp, s * Wp)[..., :s * H, :s * W]


def official_diff_hr(ye, xe, idx, s, p=3, t=2):
    """The official HR ``diff_patch`` (B, k, E, sH, sW): per-channel L1 patch distances as
    constant (s·p)² patches folded on the HR grid."""
    B, E, H, W = ye.shape
    q, key = _pad(ye, p, t), _pad(xe, p, t)
    m, k = idx.shape[1], idx.shape[2]
    qu = F.unfold(q, p, stride=t).view(B, E, p * p, m)
    ku = F.unfold(key, p, stride=t).view(B, E, p * p, -1)
    nb = torch.stack([ku[i][:, :, idx[i]] for i in range(B)])  # (B, E, pp, m, k)
    d = (qu[..., None] - nb).abs().sum(2)  # (B, E, m, k)
    P = s * p
    patches = d.permute(0, 3, 2, 1).reshape(B * k, m, E, 1, 1).expand(-1, -1, -1, P, P)
    Hp, Wp = q.shape[-2:]
    hr = reference.patch2img(patches, (s * Hp, s * Wp), P, s * t)
    return hr.view(B, k, E, s * Hp, s * Wp)[..., :s * H, :s * W]


def _random_idx(B, m, k, key_hw, p=3, t=2):
    n = ((key_hw[0] - p) // t + 1) * ((key_hw[1] - p) // t + 1)
    return torch.randint(0, n, (B, m, k))


def _key_hw(H, W, s):
    return tuple(n // s + (-(n // s - 3)) % 2 for n in (H, W))


@pytest.mark.parametrize("s,H,W", [(2, 16, 21), (2, 19, 14), (3, 18, 23), (3, 20, 17)])
def test_graph_aggregate_matches_official_composition(s, H, W, seed):
    B, C, k = 2, 4, 3
    y = torch.randn(B, C, H, W)
    key_hw = _key_hw(H, W, s)
    m = ((H + (-(H - 3)) % 2 - 3) // 2 + 1) * ((W + (-(W - 3)) % 2 - 3) // 2 + 1)
    idx = _random_idx(B, m, k, key_hw)
    gcn = GCNBlock(C, s, k, diff_channels=2)
    expected = official_regions(y, idx, key_hw, s)
    torch.testing.assert_close(gcn.aggregate(y, idx, key_hw), expected, rtol=1e-4, atol=1e-5)
    with sr_ops.use_backend("reference"):
        torch.testing.assert_close(gcn.aggregate(y, idx, key_hw), expected, rtol=1e-4, atol=1e-5)
    w = torch.softmax(torch.randn(B, k, s * H, s * W), 1)
    torch.testing.assert_close(gcn.aggregate(y, idx, key_hw, weights=w), (w[:, :, None] * expected).sum(1),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("H", [42, 43, 44, 45, 46, 47, 48, 49])  # every residue mod 6
def test_x3_aggregation_layout_matches_official_in_float64(H, seed):
    """×3 at every LR side mod 6, no input padding: the last key row's regions overhang the
    grid-padded map by up to two rows (≡ 0, 1), and graph_aggregate reading them as zeros
    gives the official GraphAggregation on its further zero-padded map."""
    s, W, B, C, k = 3, 2 * 6 + H % 6 + 30, 1, 3, 2
    y = torch.randn(B, C, H, W, dtype=torch.float64)
    key_hw = _key_hw(H, W, s)
    m = ((H + (-(H - 3)) % 2 - 3) // 2 + 1) * ((W + (-(W - 3)) % 2 - 3) // 2 + 1)
    idx = _random_idx(B, m, k, key_hw)
    gcn = GCNBlock(C, s, k, diff_channels=2).double()
    expected = official_regions(y, idx, key_hw, s)
    feat, _ = region_maps(y, key_hw, s)
    assert s * key_hw[0] > feat.shape[-2] or H % 6 not in (0, 1)  # the case the test is for
    for backend in sr_ops.available_backends():
        if backend == "triton":
            continue  # float64 here; the Triton kernels are checked in float32 above
        with sr_ops.use_backend(backend):
            torch.testing.assert_close(gcn.aggregate(y, idx, key_hw), expected, rtol=1e-12, atol=1e-12)


def official_knn_dist(ye, xe, k, window, scale, p=3, t=2):
    """Brute force with the official window (index_neighbours): sorted k smallest distances."""
    q, key = _pad(ye, p, t).double(), _pad(xe, p, t).double()
    qu, ku = F.unfold(q, p, stride=t), F.unfold(key, p, stride=t)  # (B, e, m), (B, e, n)
    D = torch.cdist(qu.transpose(1, 2), ku.transpose(1, 2)) ** 2
    m1, m2 = (q.shape[-2] - p) // t + 1, (q.shape[-1] - p) // t + 1
    n1, n2 = (key.shape[-2] - p) // t + 1, (key.shape[-1] - p) // t + 1
    if not (window >= n1 and window >= n2):
        w = min(window, n1, n2)
        i, j = torch.arange(m1)[:, None].expand(m1, m2).reshape(-1), torch.arange(m2).repeat(m1)
        ch, cw = (i // 2 - w // scale).clamp(0, n1 - w), (j // 2 - w // scale).clamp(0, n2 - w)
        a, b = torch.arange(n1)[:, None].expand(n1, n2).reshape(-1), torch.arange(n2).repeat(n1)
        inside = ((a >= ch[:, None]) & (a < ch[:, None] + w) & (b >= cw[:, None]) & (b < cw[:, None] + w))
        D = D.masked_fill(~inside, float("inf"))
    return D, D.topk(k, dim=2, largest=False).values


@pytest.mark.parametrize("window", [30, 3])
def test_construct_graph_matches_official(window, seed):
    B, E, H, W, s, k = 1, 3, 22, 27, 2, 4
    ye, xe = torch.randn(B, E, H, W), torch.randn(B, E, H // s, W // s)
    idx, key_hw, diff = construct_graph(ye, xe, s, k, window=window)
    assert key_hw == _key_hw(H, W, s)
    D, best = official_knn_dist(ye, xe, k, window, s)
    torch.testing.assert_close(D.gather(2, idx), best, rtol=1e-4, atol=1e-4)  # tie-proof
    hr = official_diff_hr(ye, xe, idx, s)
    torch.testing.assert_close(F.interpolate(diff, scale_factor=(1, s, s), mode="nearest"), hr,
                               rtol=1e-5, atol=1e-5)
    with sr_ops.use_backend("reference"):
        idx_r, _, diff_r = construct_graph(ye, xe, s, k, window=window)
    assert torch.equal(idx_r, idx)
    torch.testing.assert_close(diff_r, diff)


def test_x3_window_rule_official_by_default(seed):
    """At ×3 with the window active the official placement (i//2 - side//3) and the op's
    centred default (i//3 - side//2) pick different candidates; construct_graph follows the
    official one unless told otherwise."""
    B, E, H, W, s, k, window = 1, 3, 46, 41, 3, 3, 4
    ye, xe = torch.randn(B, E, H, W), torch.randn(B, E, H // s, W // s)
    D, best = official_knn_dist(ye, xe, k, window, s)
    idx, _, _ = construct_graph(ye, xe, s, k, window=window)
    torch.testing.assert_close(D.gather(2, idx), best, rtol=1e-4, atol=1e-4)
    idx_c, _, _ = construct_graph(ye, xe, s, k, window=window, window_rule="contract")
    assert not torch.equal(idx_c, idx)
    assert torch.isinf(D.gather(2, idx_c)).any()  # some contract neighbours lie outside the official window
    with pytest.raises(ValueError, match="window_rule"):
        construct_graph(ye, xe, s, k, window=window, window_rule="centred")


@pytest.mark.parametrize("s,H,W", [(2, 15, 20), (3, 17, 22)])
def test_gcn_block_matches_official_weight_edge(s, H, W, seed):
    """GCNBlock.forward (ECN at LR, fused weighted sum) vs the official weight_edge on
    HR edge features, neighbour maps from the reference composition."""
    B, C, E, k = 1, 4, 3, 3
    y, ye, xe = torch.randn(B, C, H, W), torch.randn(B, E, H, W), torch.randn(B, E, H // s, W // s)
    idx, key_hw, diff = construct_graph(ye, xe, s, k)
    gcn = GCNBlock(C, s, k, diff_channels=E).eval()
    with torch.no_grad():
        knn_lr, knn_hr = gcn(y, idx, key_hw, diff)
        maps = official_regions(y, idx, key_hw, s)
        diff_hr = official_diff_hr(ye, xe, idx, s)
        w_lr = torch.softmax(torch.cat([gcn.weightnet_lr(F.avg_pool2d(diff_hr[:, r], s)) for r in range(k)], 1), 1)
        w_hr = torch.softmax(torch.cat([gcn.weightnet_hr(diff_hr[:, r]) for r in range(k)], 1), 1)
        exp_lr = sum(gcn.knn_downsample(maps[:, r]) * w_lr[:, r:r + 1] for r in range(k))
        exp_hr = (maps * w_hr[:, :, None]).sum(1)
    torch.testing.assert_close(knn_hr, exp_hr, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(knn_lr, exp_lr, rtol=1e-4, atol=1e-5)


def test_gcn_block_backward(seed):
    """Training-style use: gradients reach y and every GCN weight (idx, diff held fixed)."""
    y = torch.randn(1, 4, 15, 16, requires_grad=True)
    idx, key_hw, diff = construct_graph(torch.randn(1, 3, 15, 16), torch.randn(1, 3, 7, 8), 2, 3)
    gcn = GCNBlock(4, 2, 3, diff_channels=3)
    knn_lr, knn_hr = gcn(y, idx, key_hw, diff)
    (knn_lr.square().sum() + knn_hr.square().sum()).backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    assert all(p.grad is not None for p in gcn.parameters())
    # The weight nets' last bias adds the same value to all k logits of a pixel, and the
    # softmax over k ignores such a shift: its gradient is zero up to rounding, so skip it.
    shift_invariant = {"weightnet_lr.2.0.bias", "weightnet_hr.2.0.bias"}
    dead = [n for n, p in gcn.named_parameters() if n not in shift_invariant and p.grad.abs().sum() == 0]
    assert not dead, f"no gradient reached {dead}"


def test_tiles_for_large_inputs(seed):
    """``tile`` / ``max_memory`` run IGNN tile by tile (the official quadrant chop, with a
    real budget); a budget that fits gives the whole-image result."""
    x = torch.rand(1, 3, 150, 140)
    whole = models.build("ignn", 2, **TINY)
    with torch.no_grad():
        ref = whole(x)
    calls = []
    roomy = models.build("ignn", 2, max_memory=2**34, **TINY)
    roomy.load_state_dict(whole.state_dict())
    tiled_net = models.build("ignn", 2, tile=64, tile_overlap=12, **TINY)
    tiled_net.load_state_dict(whole.state_dict())
    original = tiled_net._forward_whole
    tiled_net._forward_whole = lambda t: calls.append(tuple(t.shape[-2:])) or original(t)
    with torch.no_grad():
        torch.testing.assert_close(roomy(x), ref, rtol=0, atol=1e-6)
        out = tiled_net(x)
    assert len(calls) == 9 and max(h for h, _ in calls) <= 64 + 2 * 12 and max(w for _, w in calls) <= 64 + 2 * 12
    assert out.shape == ref.shape and torch.isfinite(out).all()
    # the graph searches inside each tile, so tiles differ from the whole image somewhat,
    # but a seam-free blend of the same network stays close on average
    assert (out - ref).abs().mean() < 0.05
    with pytest.raises(ValueError, match="max_memory"):
        models.build("ignn", 2, max_memory=-1, **TINY)
    with pytest.raises(ValueError, match="tile"):
        models.build("ignn", 2, tile=0, **TINY)
