"""GraphAgg*: IGNN's cross-scale graph aggregation with nothing learnt, as a baseline.

For each 3x3 (stride 2) patch of the LR image's embedding, ``sr_ops.cross_scale_knn`` finds
the k most similar patches in the embedding of the LR image downscaled ×1/s (MATLAB
bicubic); the (s·3)² LR-image regions those key patches were shrunk from are taken as HR
candidates, averaged with uniform weights and folded into the ×s output (overlaps
averaged) by ``sr_ops.graph_aggregate`` (AdaPN off by default, as in "average the HR
neighbours"; ``adapn=True`` gives each candidate the query patch's mean and spread).

Embedding: VGG19 ``relu1_2`` when torchvision VGG19 weights are given (``vgg=`` or the
``checkpoint`` argument), else the RGB image itself.

Padding (own choice; there is no official model): the query map is replicate-padded at the
bottom/right so the patch grid covers every pixel; the key map is not padded (its last
partial row/column of patches is dropped), so every HR region lies inside the image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import sr_ops
from sr_ops._validate import grid
from sr_ops.imresize import imresize
from sr_ops.models import register
from sr_ops.models._checkpoints import check_rgb
from sr_ops.models.ignn_graph import grid_pad, knn_window
from sr_ops.models.vgg import VGGRelu12, load_torchvision_vgg

__all__ = ["GraphAggStar", "build_graphagg_star"]


class GraphAggStar(nn.Module):
    """RGB (B, 3, H, W) in [0, 1] -> (B, 3, s·H, s·W) in [0, 1]; no learnt weights.

    Needs H, W >= s·p and at least k key patches in the ×1/s map.
    """

    def __init__(self, scale: int, k: int = 5, patch_size: int = 3, stride: int = 2,
                 window: int | None = 30, adapn: bool = False, embed: nn.Module | None = None) -> None:
        super().__init__()
        for name, val in (("scale", scale), ("k", k), ("stride", stride)):
            if not isinstance(val, int) or isinstance(val, bool) or val < 1:
                raise ValueError(f"{name} must be a positive int, got {val!r}")
        if not isinstance(patch_size, int) or patch_size < 2:
            raise ValueError(f"patch_size must be an int >= 2, got {patch_size!r}")
        if scale < 2:
            raise ValueError(f"scale must be at least 2, got {scale}")
        self.scale, self.k, self.patch_size, self.stride = scale, k, patch_size, stride
        self.window, self.adapn = window, bool(adapn)
        self.embed = embed

    def neighbours(self, x: torch.Tensor):
        """x (B, 3, H, W) -> (idx (B, m, k) on the padded query grid, key_hw (Hk, Wk), padded x)."""
        s, p, t = self.scale, self.patch_size, self.stride
        H, W = x.shape[-2:]
        hk, wk = H // s, W // s
        if min(hk, wk) < p:
            raise ValueError(f"x ({H}x{W}) is too small: its ×1/{s} key map ({hk}x{wk}) must hold a "
                             f"{p}x{p} patch")
        son = imresize(x[:, :, :s * hk, :s * wk], 1 / s).clamp(0.0, 1.0)
        ph, pw = grid_pad(H, p, t), grid_pad(W, p, t)
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        query, key = (self.embed(xp), self.embed(son)) if self.embed is not None else (xp, son)
        n1, n2 = grid(hk, p, t), grid(wk, p, t)
        if n1 * n2 < self.k:
            raise ValueError(f"x ({H}x{W}) is too small: {n1 * n2} key patches, fewer than k={self.k}")
        _, idx = sr_ops.cross_scale_knn(query, key, self.k, p, t, knn_window(self.window, n1, n2), s)
        return idx, (hk, wk), xp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_rgb(x)
        s = self.scale
        H, W = x.shape[-2:]
        idx, key_hw, xp = self.neighbours(x)
        B, _, Hp, Wp = xp.shape
        uniform = xp.new_full((B, self.k, s * Hp, s * Wp), 1.0 / self.k)
        out = sr_ops.graph_aggregate(xp, idx, xp, key_hw, s, self.patch_size, self.stride,
                                     weights=uniform, adapn=self.adapn)
        return out[..., :s * H, :s * W].clamp(0.0, 1.0)


@register("graphagg_star")
def build_graphagg_star(scale: int, checkpoint=None, *, vgg=None, **options) -> GraphAggStar:
    """GraphAgg* for any integer ``scale`` >= 2. ``checkpoint`` or ``vgg``: torchvision VGG19
    weights (``features.N.*``) for a relu1_2 embedding; neither -> match on the image itself.
    ``options``: k, patch_size, stride, window, adapn."""
    if checkpoint is not None and vgg is not None:
        raise ValueError("give the VGG weights once, as checkpoint or as vgg, not both")
    weights = vgg if vgg is not None else checkpoint
    embed = None if weights is None else load_torchvision_vgg(VGGRelu12(), weights)
    return GraphAggStar(scale, embed=embed, **options)
