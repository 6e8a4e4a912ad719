"""EDSR and MDSR (Lim et al., "Enhanced Deep Residual Networks for Single Image
Super-Resolution", CVPRW 2017), with the official module layout of
sanghyun-son/EDSR-PyTorch (``src/model/edsr.py``, ``mdsr.py``), so the released ``.pt``
state dicts load strictly.

Registered models (``sr_ops.models.build(name, scale, checkpoint)``):

================  ==========  ========  =========  ============================
name              resblocks   features  res_scale  scales
================  ==========  ========  =========  ============================
``edsr_baseline``  16          64        1.0        2, 3, 4 (one model per scale)
``edsr``           32          256       0.1        2, 3, 4 (one model per scale)
``mdsr_baseline``  16          64        1.0        2, 3 and 4 in one model
``mdsr``           80          64        1.0        2, 3 and 4 in one model
================  ==========  ========  =========  ============================

EDSR data flow (the network works on 0..rgb_range = 255, like the official code)::

    x*255 -> sub_mean -> head.0 (3x3, 3->F) -> f
    f -> body.0..body.{n-1} (ResBlocks) -> body.{n} (3x3) -> + f
      -> tail.0 (Upsampler) -> tail.1 (3x3, F->3) -> add_mean -> /255 (-> clamp to [0, 1])

MDSR inserts the scale's ``pre_process[i]`` (two 5x5 ResBlocks) after the head and uses
``upsample[i]`` before a shared ``tail.0``; ``i`` indexes ``scales`` (official order 2, 3, 4).
State-dict keys: ``sub_mean.*``, ``add_mean.*``, ``head.0.*``, ``body.{i}.body.{0,2}.*``,
``body.{n}.*`` and ``tail.0.{0,2,..}.*`` + ``tail.1.*`` (EDSR) or
``pre_process.{i}.{0,1}.body.{0,2}.*``, ``upsample.{i}.{0,2,..}.*``, ``tail.0.*`` (MDSR).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from sr_ops.models import register
from sr_ops.models._checkpoints import check_rgb, load_strict
from sr_ops.models.edsr_blocks import MeanShift, ResBlock, Upsampler, default_conv

__all__ = ["EDSR", "MDSR", "load_state_dict_strict"]

#: (n_resblocks, n_feats, res_scale) of the released configurations.
EDSR_CONFIGS = {"edsr_baseline": (16, 64, 1.0), "edsr": (32, 256, 0.1)}
MDSR_CONFIGS = {"mdsr_baseline": (16, 64), "mdsr": (80, 64)}


def _check_scale(scale, allowed: Sequence[int], name: str = "scale") -> int:
    if not isinstance(scale, int) or isinstance(scale, bool) or scale not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {scale!r}")
    return scale


class EDSR(nn.Module):
    """EDSR: RGB (B, 3, H, W) in [0, 1] -> (B, 3, s*H, s*W) in [0, 1] (any H, W >= 1).

    ``clamp=False`` returns the raw output (the official model does not clip; PSNR under the
    evaluation protocol is the same since it clamps anyway).
    """

    def __init__(self, scale: int, n_resblocks: int = 16, n_feats: int = 64,
                 res_scale: float = 1.0, rgb_range: float = 255.0, clamp: bool = True) -> None:
        super().__init__()
        self.scale = _check_scale(scale, (2, 3, 4, 8))
        if n_resblocks < 1 or n_feats < 1:
            raise ValueError(f"n_resblocks and n_feats must be >= 1, got {n_resblocks}, {n_feats}")
        self.rgb_range = float(rgb_range)
        self.clamp = clamp
        self.sub_mean = MeanShift(rgb_range, sign=-1)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(default_conv(3, n_feats, 3))
        self.body = nn.Sequential(*[ResBlock(n_feats, 3, res_scale) for _ in range(n_resblocks)],
                                  default_conv(n_feats, n_feats, 3))
        self.tail = nn.Sequential(Upsampler(scale, n_feats), default_conv(n_feats, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_rgb(x)
        f = self.head(self.sub_mean(x * self.rgb_range))
        out = self.add_mean(self.tail(self.body(f) + f)) / self.rgb_range
        return out.clamp(0.0, 1.0) if self.clamp else out


class MDSR(nn.Module):
    """MDSR: one network for every scale in ``scales``; ``scale`` picks the active branch.

    RGB (B, 3, H, W) in [0, 1] -> (B, 3, s*H, s*W) in [0, 1], s = ``self.scale``;
    ``set_scale(s)`` switches branch (the state dict always holds every scale's branch).
    """

    def __init__(self, scale: int, n_resblocks: int = 16, n_feats: int = 64,
                 scales: Sequence[int] = (2, 3, 4), rgb_range: float = 255.0,
                 clamp: bool = True) -> None:
        super().__init__()
        scales = tuple(scales)
        for s in scales:
            _check_scale(s, (2, 3, 4, 8), "scales")
        if len(set(scales)) != len(scales):
            raise ValueError(f"scales must be distinct, got {scales}")
        self.scales = scales
        self.rgb_range = float(rgb_range)
        self.clamp = clamp
        self.sub_mean = MeanShift(rgb_range, sign=-1)
        self.head = nn.Sequential(default_conv(3, n_feats, 3))
        self.pre_process = nn.ModuleList(
            nn.Sequential(ResBlock(n_feats, 5), ResBlock(n_feats, 5)) for _ in scales)
        self.body = nn.Sequential(*[ResBlock(n_feats, 3) for _ in range(n_resblocks)],
                                  default_conv(n_feats, n_feats, 3))
        self.upsample = nn.ModuleList(Upsampler(s, n_feats) for s in scales)
        self.tail = nn.Sequential(default_conv(n_feats, 3, 3))
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.set_scale(scale)

    def set_scale(self, scale: int) -> "MDSR":
        """Select the branch for ``scale`` (one of ``self.scales``); returns self."""
        self.scale_idx = self.scales.index(_check_scale(scale, self.scales))
        self.scale = scale
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_rgb(x)
        f = self.pre_process[self.scale_idx](self.head(self.sub_mean(x * self.rgb_range)))
        res = self.body(f) + f
        out = self.add_mean(self.tail(self.upsample[self.scale_idx](res))) / self.rgb_range
        return out.clamp(0.0, 1.0) if self.clamp else out


def load_state_dict_strict(model: nn.Module, checkpoint) -> nn.Module:
    """Load ``checkpoint`` (a path, a state dict, or a dict holding one under
    ``state_dict``) into ``model`` strictly; strips DataParallel's ``module.`` prefix.
    Raises ``KeyError`` naming every missing and unexpected key and ``ValueError`` naming
    every shape mismatch (see ``sr_ops.models._checkpoints.load_strict``)."""
    return load_strict(model, checkpoint)


def _build_edsr(name: str, scale: int, checkpoint, options: dict) -> EDSR:
    n_resblocks, n_feats, res_scale = EDSR_CONFIGS[name]
    _check_scale(scale, (2, 3, 4))
    model = EDSR(scale, n_resblocks, n_feats, res_scale, **options)
    return model if checkpoint is None else load_state_dict_strict(model, checkpoint)


def _build_mdsr(name: str, scale: int, checkpoint, options: dict) -> MDSR:
    n_resblocks, n_feats = MDSR_CONFIGS[name]
    model = MDSR(scale, n_resblocks, n_feats, **options)
    return model if checkpoint is None else load_state_dict_strict(model, checkpoint)


@register("edsr_baseline")
def build_edsr_baseline(scale: int, checkpoint=None, **options) -> EDSR:
    """EDSR-baseline: 16 ResBlocks, 64 features (1,369,859 learnt parameters at x2)."""
    return _build_edsr("edsr_baseline", scale, checkpoint, options)


@register("edsr")
def build_edsr(scale: int, checkpoint=None, **options) -> EDSR:
    """Full EDSR: 32 ResBlocks, 256 features, residual scaling 0.1."""
    return _build_edsr("edsr", scale, checkpoint, options)


@register("mdsr_baseline")
def build_mdsr_baseline(scale: int, checkpoint=None, **options) -> MDSR:
    """MDSR-baseline: 16 ResBlocks, 64 features, x2/x3/x4 branches; ``scale`` selects one."""
    return _build_mdsr("mdsr_baseline", scale, checkpoint, options)


@register("mdsr")
def build_mdsr(scale: int, checkpoint=None, **options) -> MDSR:
    """Full MDSR: 80 ResBlocks, 64 features, x2/x3/x4 branches; ``scale`` selects one."""
    return _build_mdsr("mdsr", scale, checkpoint, options)
