"""IGNN's graph: construction (cross-scale KNN + edge features) and aggregation (GCNBlock).

Follows sczhou/IGNN ``models/submodules.py`` (``Graph``, ``GCNBlock``) and
``models/graph_agg.py`` (``GraphConstruct``, ``GraphAggregation``), with the data path on
the sr_ops ops: ``cross_scale_knn`` finds the neighbours, ``graph_aggregate`` gathers,
AdaPN-normalises and folds them, ``patch2img`` folds the edge features.

Padding, as the official ``im2patch``: a map is zero-padded at the bottom/right until
``(H - p) % t == 0`` (stride 2: one row/column when H is even). The key map is the
embedding of the LR image downscaled by ``s`` (size ``H//s``); the HR neighbour of key
patch (a, b) is the (s·p)² region of the LR feature at (s·t·a, s·t·b), read from the
feature cropped to ``s·(H//s)`` rows and zero-padded (the official code reads it from
``pixelshuffle_down(feature)``, padded the same way); where such a region overhangs the
padded map (×3), graph_aggregate reads zeros, as the official code does.

Two exact rewrites keep the (B, k·C_e, s·H, s·W) edge-feature map of the official code
from being built: its HR map is a nearest-neighbour upscale of the LR fold (constant
patches: a pixel of the HR fold sees the same covering patches as its LR pixel), so the
1x1 "ECN" weight nets run at LR resolution and their softmax is upscaled; and
``AvgPool(s)`` of that upscale is the LR fold itself.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import sr_ops
from sr_ops._validate import grid
from sr_ops.models.edsr_blocks import ResBlock

__all__ = ["GCNBlock", "WINDOW_RULES", "construct_graph", "grid_pad", "knn_window", "knn_window_start",
           "region_maps"]


def grid_pad(n: int, patch_size: int, stride: int) -> int:
    """Rows (or columns) to add at the end so that (n + pad - p) % t == 0."""
    return (-(n - patch_size)) % stride


def _pad_to_grid(x: torch.Tensor, patch_size: int, stride: int) -> torch.Tensor:
    ph, pw = (grid_pad(n, patch_size, stride) for n in x.shape[-2:])
    return F.pad(x, (0, pw, 0, ph)) if ph or pw else x


def knn_window(window: int | None, n1: int, n2: int) -> int | None:
    """The official window rule (``index_neighbours``) in cross_scale_knn's terms: no window
    when it covers the whole key grid, else a square one of side min(window, n1, n2)."""
    if window is None or (window >= n1 and window >= n2):
        return None
    return min(window, n1, n2)


def conv(in_ch: int, out_ch: int, kernel_size: int, act: bool = True, stride: int = 1) -> nn.Sequential:
    """IGNN's ``conv`` helper: Conv2d (padding (k-1)//2) [+ ReLU]; keys ``0.weight``, ``0.bias``."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride,
                                         padding=(kernel_size - 1) // 2)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _edge_features(query: torch.Tensor, key: torch.Tensor, idx: torch.Tensor, patch_size: int,
                   stride: int, chunk: int = 2048) -> torch.Tensor:
    """Per query patch q, neighbour r, channel c: sum over the p×p pixels of
    |query patch q - key patch idx[q, r]|; returns (B, k, m, C)."""
    B, C = query.shape[:2]
    p, t = patch_size, stride
    k, m = idx.shape[2], idx.shape[1]
    q = F.unfold(query, p, stride=t).view(B, C, p * p, m)
    keys = F.unfold(key, p, stride=t)  # (B, C·p², n)
    out = query.new_empty(B, k, m, C)
    for q0 in range(0, m, chunk):  # chunks bound the gathered neighbour patches' memory
        q1 = min(q0 + chunk, m)
        ids = idx[:, q0:q1].reshape(B, 1, -1).expand(B, keys.shape[1], -1)
        nb = keys.gather(2, ids).view(B, C, p * p, q1 - q0, k)
        d = (q[:, :, :, q0:q1, None] - nb).abs().sum(2)  # (B, C, mc, k)
        out[:, :, q0:q1] = d.permute(0, 3, 2, 1)
    return out


WINDOW_RULES = ("official", "contract")


def knn_window_start(rule: str, window: int | None, scale: int) -> tuple[int, int] | None:
    """cross_scale_knn's ``window_start`` for a window rule and the side ``knn_window`` gave:
    "official" is ``index_neighbours``' ``clamp(i//2 - side//scale, ...)``, "contract" the
    op's default ``clamp(i//scale - side//2, ...)``. The two agree at ×2 and ×4."""
    if rule not in WINDOW_RULES:
        raise ValueError(f"window_rule must be one of {WINDOW_RULES}, got {rule!r}")
    if window is None or rule == "contract":
        return None
    return 2, window // scale


def construct_graph(query_emb: torch.Tensor, key_emb: torch.Tensor, scale: int, k: int = 5,
                    patch_size: int = 3, stride: int = 2, window: int | None = 30,
                    window_rule: str = "official"):
    """IGNN's graph construction (``Graph`` / ``GraphConstruct`` in eval mode).

    Args:
        query_emb: (B, E, H, W) embedding of the LR image.
        key_emb: (B, E, H//s, W//s) embedding of its ×1/s downscale.
        window_rule: where a query's window sits (``knn_window_start``): "official" (the
            released weights were trained with it) or "contract" (cross_scale_knn's default).

    Returns:
        idx: (B, m, k) neighbours (key-patch numbers; m the p×p / stride t grid of the padded
            query map), from ``sr_ops.cross_scale_knn``.
        key_hw: (Hk, Wk) of the padded key map (the grid ``idx`` numbers).
        diff: (B, k, E, H, W) edge features at LR resolution: per pixel the mean, over the
            query patches covering it, of the per-channel L1 distance to the neighbour
            (the official HR ``diff_patch`` is its nearest-neighbour ×s upscale).
    """
    H, W = query_emb.shape[-2:]
    q = _pad_to_grid(query_emb, patch_size, stride)
    key = _pad_to_grid(key_emb, patch_size, stride)
    Hk, Wk = key.shape[-2:]
    if min(Hk, Wk) < patch_size:
        raise ValueError(f"the ×1/{scale} key map ({Hk}x{Wk}) is smaller than a {patch_size}x{patch_size} "
                         f"patch: the LR image is too small for the graph")
    n1, n2 = grid(Hk, patch_size, stride), grid(Wk, patch_size, stride)
    if n1 * n2 < k:
        raise ValueError(f"the key grid has {n1}x{n2} patches, fewer than k={k}: the LR image "
                         f"({H}x{W}) is too small for the graph")
    side = knn_window(window, n1, n2)
    _, idx = sr_ops.cross_scale_knn(q, key, k, patch_size, stride, side, scale,
                                    window_start=knn_window_start(window_rule, side, scale))
    d = _edge_features(q, key, idx, patch_size, stride)  # (B, k, m, E)
    # Constant p×p patches folded: each pixel the mean of the distances of its covering patches.
    # One neighbour at a time: patch2img gets the expanded (B, m, E, p, p) patches as a copy.
    diff = torch.stack([sr_ops.patch2img(d[:, r, :, :, None, None].expand(-1, -1, -1, patch_size, patch_size),
                                         tuple(q.shape[-2:]), patch_size, stride) for r in range(k)], 1)
    return idx, (Hk, Wk), diff[..., :H, :W]


def region_maps(y: torch.Tensor, key_hw, scale: int, patch_size: int = 3, stride: int = 2):
    """The (feat, query_feat) pair graph_aggregate needs for IGNN's padding.

    y (B, C, H, W) -> two (B, C, Hp, Wp) maps, Hp, Wp the grid-padded size: ``query_feat``
    is y zero-padded (query patch statistics, as the official ``im2patch(y)``); ``feat`` is
    y cropped to s·(H//s) rows and columns, zero-padded to the same size (the HR neighbour
    regions, as the official zero-padded ``pixelshuffle_down(y)``). At ×3 the last key
    row's regions can overhang it by up to two rows (sides ≡ 0, 1 mod 6); graph_aggregate
    reads the overhang as zeros, as the official map padded further does.
    """
    s = scale
    H, W = y.shape[-2:]
    hk, wk = H // s, W // s
    expect = tuple(n + grid_pad(n, patch_size, stride) for n in (hk, wk))
    if tuple(key_hw) != expect:
        raise ValueError(f"key_hw {tuple(key_hw)} does not match the padded ×1/{s} map of y "
                         f"({H}x{W} -> {expect})")
    query_feat = _pad_to_grid(y, patch_size, stride)
    Hp, Wp = query_feat.shape[-2:]
    feat = F.pad(y[:, :, :s * hk, :s * wk], (0, Wp - s * wk, 0, Hp - s * hk))
    return feat, query_feat


class GCNBlock(nn.Module):
    """IGNN's graph aggregation (``gcn.*`` keys): GraphAgg + ECN weights + DEN.

    ``knn_downsample`` (DEN) brings each HR neighbour map back to LR, ``weightnet_lr`` /
    ``weightnet_hr`` (ECN) turn the edge features into per-pixel softmax weights over k.
    """

    def __init__(self, n_feats: int, scale: int, k: int = 5, patch_size: int = 3, stride: int = 2,
                 diff_channels: int = 64, res_scale: float = 0.1) -> None:
        super().__init__()
        self.scale, self.k, self.patch_size, self.stride = scale, k, patch_size, stride
        self.knn_downsample = nn.Sequential(conv(n_feats, n_feats, 5, stride=scale),
                                            conv(n_feats, n_feats, 3),
                                            conv(n_feats, n_feats, 3, act=False))

        def weightnet() -> nn.Sequential:
            return nn.Sequential(conv(diff_channels, 64, 1, act=False), ResBlock(64, 1, res_scale),
                                 conv(64, 1, 1, act=False))

        self.weightnet_lr = weightnet()
        self.weightnet_hr = weightnet()

    def edge_weights(self, diff: torch.Tensor):
        """diff (B, k, E, H, W) -> softmax weights over k, (w_lr, w_hr), each (B, k, H, W)."""
        B, k, E, H, W = diff.shape
        flat = diff.reshape(B * k, E, H, W)
        w_lr = torch.softmax(self.weightnet_lr(flat).view(B, k, H, W), dim=1)
        w_hr = torch.softmax(self.weightnet_hr(flat).view(B, k, H, W), dim=1)
        return w_lr, w_hr

    def aggregate(self, y: torch.Tensor, idx: torch.Tensor, key_hw, weights: torch.Tensor | None = None,
                  neighbours: slice | None = None) -> torch.Tensor:
        """GraphAgg: the HR neighbour maps of y (B, C, H, W), AdaPN-normalised, cropped to
        (s·H, s·W). ``weights`` (B, k, s·H, s·W) -> their weighted sum (B, C, sH, sW); else
        (B, k', C, sH, sW) for the neighbours ``neighbours`` selects (all by default)."""
        s, p, t = self.scale, self.patch_size, self.stride
        H, W = y.shape[-2:]
        feat, query = region_maps(y, key_hw, s, p, t)
        if neighbours is not None:
            idx = idx[:, :, neighbours]
        if weights is not None:
            Hp, Wp = feat.shape[-2:]
            weights = F.pad(weights, (0, s * (Wp - W), 0, s * (Hp - H)))
        out = sr_ops.graph_aggregate(feat, idx, query, key_hw, s, p, t, weights=weights)
        return out[..., :s * H, :s * W]

    def forward(self, y: torch.Tensor, idx: torch.Tensor, key_hw, diff: torch.Tensor):
        """y (B, C, H, W) LR features, idx (B, m, k), diff (B, k, E, H, W) edge features
        -> (knn_lr (B, C, H, W), knn_hr (B, C, s·H, s·W))."""
        w_lr, w_hr = self.edge_weights(diff)
        w_hr = F.interpolate(w_hr, scale_factor=self.scale, mode="nearest")
        knn_lr = knn_hr = None
        # One HR neighbour map at a time: DEN needs each separately, and summing knn_hr from
        # them is cheaper than a second, weighted graph_aggregate pass over all k.
        for r in range(self.k):
            hr_r = self.aggregate(y, idx, key_hw, neighbours=slice(r, r + 1))[:, 0]
            lr_r = self.knn_downsample(hr_r) * w_lr[:, r:r + 1]
            if knn_hr is None:
                knn_lr, knn_hr = lr_r, hr_r * w_hr[:, r:r + 1]
            else:
                knn_lr = knn_lr + lr_r
                knn_hr = knn_hr.addcmul_(hr_r, w_hr[:, r:r + 1])
        return knn_lr, knn_hr
