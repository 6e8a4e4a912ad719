"""IGNN (Zhou et al., "Cross-Scale Internal Graph Neural Network for Image
Super-Resolution", NeurIPS 2020), inference, on the sr_ops graph ops.

Re-implementation of sczhou/IGNN ``models/IGNN.py`` (config: 256 features, 32 residual
blocks, residual scale 0.1, ReLU, k=5 neighbours, 3x3 patches, stride 2, window 30,
AdaPN and edge features on). Parameter names match the official state dict (after
stripping DataParallel's ``module.``), so its checkpoints load strictly.

Data flow (the official model works on RGB in [0, 255]; this one takes [0, 1])::

    son = imresize(x, 1/g)                         g = 2 for ×2 and ×4, 3 for ×3
    idx, diff = graph(VGG relu1_2(x), VGG relu1_2(son))     # sr_ops.cross_scale_knn
    x0 = head(sub_mean(255 x));  x1 = body1(x0)            # 16 ResBlocks
    x1_lr, x1_hr = gcn(x1, idx, diff)              # sr_ops.graph_aggregate + ECN + DEN
    x2 = body2(fuse_b([x1, x1_lr])) + x0           # 16 ResBlocks + conv
    out = add_mean(tail(fuse_up([upsample(x2), x1_hr]))) / 255   # ×4: tail upsamples ×2 again

Where it differs from the official code (no checkpoint exists here to measure the effect):

* The official kNN ranks by ``|x|² - 2x·y + |y|²`` in float32; two near-equal distances
  can come out in the other order than their exact values give, which sr_ops follows.
* The official code switches the window off for good (a global flag) after the first image
  whose key grid fits in it; here every image uses its own window.
"""
from __future__ import annotations

from os import PathLike

import torch
from torch import nn

from sr_ops.imresize import imresize
from sr_ops.models import register
from sr_ops.models._checkpoints import check_rgb, load_file, load_strict
from sr_ops.models.edsr_blocks import MeanShift, ResBlock, Upsampler
from sr_ops.models.ignn_graph import GCNBlock, construct_graph, conv, knn_window_start
from sr_ops.models.vgg import VGGRelu12, load_torchvision_vgg
from sr_ops.tiled import tiled

__all__ = ["IGNN", "build_ignn", "load_official"]

_ALIASES = ("vggnet.", "graph.embedcnn.")  # one module, stored twice in the official state dict


class _Graph(nn.Module):
    """Holds the embedding under ``graph.embedcnn`` (the official key layout)."""

    def __init__(self, embedcnn: nn.Module) -> None:
        super().__init__()
        self.embedcnn = embedcnn


class IGNN(nn.Module):
    """IGNN: RGB (B, 3, H, W) in [0, 1] -> (B, 3, s·H, s·W) in [0, 1] (clamped).

    The LR side must leave at least k key patches in the ×1/g map (about 10 px at ×2).
    ``max_memory`` (bytes): run large inputs with ``sr_ops.tiled`` under that budget, as the
    official test chops images into quadrants (shave 12), but with tiles sized to a real
    budget (or at most ``tile`` LR pixels a side); each tile keeps ``tile_overlap`` LR pixels
    of context per side. The graph then
    searches within a tile, so the result is close to, not equal to, the whole-image one.
    ``chop="official"``: the official test's recursive quadrant chop instead (what the
    published PSNRs were measured with; see ``sr_ops.models.ignn_chop``).
    ``window_rule``: "official" (default) places each query's window as the official code
    does; "contract" as cross_scale_knn's default (they differ at ×3 only).
    """

    def __init__(self, scale: int, n_resblocks: int = 32, n_feats: int = 256, k: int = 5,
                 window: int | None = 30, res_scale: float = 0.1, clamp: bool = True,
                 max_memory: int | None = None, tile: int | None = None, tile_overlap: int = 24,
                 window_rule: str = "official", chop: str | None = None) -> None:
        super().__init__()
        if scale not in (2, 3, 4) or isinstance(scale, bool):
            raise ValueError(f"scale must be 2, 3 or 4, got {scale!r}")
        for name, val in (("n_resblocks", n_resblocks), ("n_feats", n_feats), ("k", k)):
            if not isinstance(val, int) or isinstance(val, bool) or val < 1:
                raise ValueError(f"{name} must be a positive int, got {val!r}")
        if window is not None and (not isinstance(window, int) or window < 1):
            raise ValueError(f"window must be a positive int or None, got {window!r}")
        if max_memory is not None and (not isinstance(max_memory, int) or max_memory < 1):
            raise ValueError(f"max_memory must be a positive int (bytes) or None, got {max_memory!r}")
        self.scale, self.k, self.window, self.clamp = scale, k, window, clamp
        knn_window_start(window_rule, None, scale)  # validates the name
        self.window_rule = window_rule
        if chop not in (None, "official"):
            raise ValueError(f"chop must be None or 'official', got {chop!r}")
        if chop is not None and (max_memory is not None or tile is not None):
            raise ValueError("chop='official' and tile/max_memory are two ways to cut the image: pick one")
        self.chop = chop
        if tile is not None and (not isinstance(tile, int) or tile < 1):
            raise ValueError(f"tile must be a positive int (LR pixels) or None, got {tile!r}")
        self.max_memory, self.tile, self.tile_overlap = max_memory, tile, tile_overlap
        self.graph_scale = 2 if scale == 4 else scale
        self.patch_size, self.stride = 3, 2
        n, g = n_feats, self.graph_scale

        self.sub_mean = MeanShift(255.0, sign=-1)
        self.add_mean = MeanShift(255.0, sign=1)
        self.vggnet = VGGRelu12()
        self.graph = _Graph(self.vggnet)
        self.head = conv(3, n, 3, act=False)
        pre = n_resblocks // 2
        self.body1 = nn.Sequential(*[ResBlock(n, 3, res_scale) for _ in range(pre)])
        self.gcn = GCNBlock(n, g, k, self.patch_size, self.stride, VGGRelu12.out_channels, res_scale)
        self.fuse_b = nn.Sequential(conv(2 * n, n, 3), conv(n, n, 3, act=False))
        self.body2 = nn.Sequential(*[ResBlock(n, 3, res_scale) for _ in range(n_resblocks - pre)],
                                   conv(n, n, 3, act=False))
        self.upsample = Upsampler(g, n)
        self.fuse_up = nn.Sequential(conv(2 * n, n, 3), conv(n, n, 3))
        tail: list[nn.Module] = [Upsampler(2, n)] if scale == 4 else []
        self.tail = nn.Sequential(*tail, conv(n, 3, 3, act=False))

    def son(self, x: torch.Tensor) -> torch.Tensor:
        """The ×1/g image the graph searches: x cropped to multiples of g, MATLAB-bicubic
        downscaled, clamped (as the official data loader makes it)."""
        g = self.graph_scale
        H, W = x.shape[-2:]
        return imresize(x[:, :, :H - H % g, :W - W % g], 1 / g).clamp(0.0, 1.0)

    def build_graph(self, x: torch.Tensor, son: torch.Tensor | None = None):
        """x (B, 3, H, W) in [0, 1] (son: its ×1/g image, made here when None)
        -> (idx (B, m, k), key_hw, diff (B, k, 64, H, W))."""
        g = self.graph_scale
        son = self.son(x) if son is None else son
        emb = self.graph.embedcnn
        return construct_graph(emb(x), emb(son), g, self.k, self.patch_size, self.stride, self.window,
                               self.window_rule)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_rgb(x)
        if self.max_memory is not None or self.tile is not None:
            return tiled(self._forward_whole, x, self.scale, tile=self.tile, overlap=self.tile_overlap,
                         max_memory=self.max_memory, align=2 * self.graph_scale)
        if self.chop == "official":
            from sr_ops.models.ignn_chop import official_chop

            with torch.no_grad():
                son = self.son(x)
            return official_chop(lambda s, t: self._forward_whole(t, s), son, x, self.scale, self.graph_scale)
        return self._forward_whole(x)

    def _forward_whole(self, x: torch.Tensor, son: torch.Tensor | None = None) -> torch.Tensor:
        H, W = x.shape[-2:]
        if min(H, W) < 2 * self.graph_scale + self.patch_size:
            raise ValueError(f"x ({H}x{W}) is too small for IGNN's ×1/{self.graph_scale} graph")
        with torch.no_grad():  # the official model detaches idx and the edge features
            idx, key_hw, diff = self.build_graph(x, son)
        x0 = self.head(self.sub_mean(x * 255.0))
        x1 = self.body1(x0)
        x1_lr, x1_hr = self.gcn(x1, idx, key_hw, diff)
        x1 = self.fuse_b(torch.cat([x1, x1_lr], dim=1))
        x2 = self.body2(x1) + x0
        out = self.fuse_up(torch.cat([self.upsample(x2), x1_hr], dim=1))
        out = self.add_mean(self.tail(out)) / 255.0
        return out.clamp(0.0, 1.0) if self.clamp else out

    def load_official(self, checkpoint) -> "IGNN":
        """See ``load_official``."""
        return load_official(self, checkpoint)


def _read(checkpoint) -> dict:
    if isinstance(checkpoint, (str, PathLike)):
        checkpoint = load_file(checkpoint)
    if not isinstance(checkpoint, dict):
        raise TypeError(f"checkpoint must be a path or a dict, got {type(checkpoint).__name__}")
    for wrapper in ("net_state_dict", "state_dict"):  # official: {'net_state_dict': ..., 'epoch_idx': ...}
        if isinstance(checkpoint.get(wrapper), dict):
            checkpoint = checkpoint[wrapper]
            break
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in checkpoint.items()}


def load_official(model: IGNN, checkpoint) -> IGNN:
    """Load official weights into ``model`` (path or dict), strictly.

    Accepts an official IGNN checkpoint (``{'net_state_dict': ...}`` or a bare state dict,
    DataParallel ``module.`` prefixes allowed) or torchvision VGG19 weights
    (``features.N.*``: only conv1_1/conv1_2 are used, for the embedding). The embedding's
    keys appear twice in the official state dict (``vggnet.*`` and ``graph.embedcnn.*``, the
    same module); either copy alone is accepted, two different copies are an error.

    Raises KeyError naming every missing and unexpected key, ValueError naming every shape
    mismatch.
    """
    state = _read(checkpoint)
    if state and all(k.startswith(("features.", "classifier.")) for k in state):
        load_torchvision_vgg(model.vggnet, state)
        return model
    a, b = _ALIASES
    for src, dst in ((a, b), (b, a)):
        for key in [k for k in state if k.startswith(src)]:
            twin = dst + key[len(src):]
            if twin not in state:
                state[twin] = state[key]
            elif not torch.equal(state[twin], state[key]):
                raise ValueError(f"{key} and {twin} are the same module but differ in the checkpoint")
    return load_strict(model, state, what=f"IGNN x{model.scale}")


@register("ignn")
def build_ignn(scale: int, checkpoint=None, *, vgg=None, **options) -> IGNN:
    """IGNN for ``scale`` 2, 3 or 4. ``checkpoint``: official IGNN weights; ``vgg``:
    torchvision VGG19 weights for the embedding (loaded after the checkpoint).
    ``options``: n_resblocks, n_feats, k, window, res_scale, clamp, max_memory, tile,
    tile_overlap, window_rule ("official": the official code's window placement, which the
    released ×3 weights were trained with; "contract": cross_scale_knn's centred default),
    chop ("official": the official test's recursive quadrant chop, with which the published
    PSNRs were measured; None: the whole image, or tiles with tile/max_memory)."""
    model = IGNN(scale, **options)
    if checkpoint is not None:
        load_official(model, checkpoint)
    if vgg is not None:
        load_torchvision_vgg(model.vggnet, vgg)
    return model
