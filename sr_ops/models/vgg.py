"""Frozen VGG19 ``relu1_2`` embedding (conv1_1 -> ReLU -> conv1_2 -> ReLU), as IGNN uses it.

Module layout follows IGNN's ``models/VGG19.py`` (sczhou/IGNN) so that the official IGNN
checkpoint's ``vggnet.*`` keys load as they are:

* ``sub_mean``: a frozen 1x1 conv, (x - ImageNet mean) / ImageNet std;
* ``model.0`` conv1_1 (3 -> 64, 3x3), ``model.1`` ReLU, ``model.2`` conv1_2 (64 -> 64), ``model.3`` ReLU.

``load_torchvision_vgg`` takes torchvision's ``vgg19`` weights (``features.0.*`` =
conv1_1, ``features.2.*`` = conv1_2); nothing is downloaded.

Input RGB (B, 3, H, W) in [0, 1] (the official module takes [0, 255] and divides by 255
first); output (B, 64, H, W).
"""
from __future__ import annotations

from os import PathLike

import torch
from torch import nn

from sr_ops.models._checkpoints import load_file
from sr_ops.models.edsr_blocks import MeanShift

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "VGGRelu12", "load_torchvision_vgg"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision index of conv1_1 / conv1_2 in vgg19().features -> our ``model`` index.
_TORCHVISION_CONVS = {0: 0, 2: 2}


class VGGRelu12(nn.Module):
    """VGG19 up to relu1_2; parameters frozen (requires_grad=False)."""

    out_channels = 64

    def __init__(self) -> None:
        super().__init__()
        self.sub_mean = MeanShift(1.0, IMAGENET_MEAN, IMAGENET_STD, sign=-1)
        self.model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(inplace=True),
                                   nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(inplace=True))
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) RGB in [0, 1] -> relu1_2 features (B, 64, H, W)."""
        return self.model(self.sub_mean(x))


def _state_dict(checkpoint) -> dict:
    if isinstance(checkpoint, (str, PathLike)):
        checkpoint = load_file(checkpoint)
    if not isinstance(checkpoint, dict):
        raise TypeError(f"checkpoint must be a path or a dict, got {type(checkpoint).__name__}")
    return checkpoint.get("state_dict", checkpoint)


def load_torchvision_vgg(module: VGGRelu12, checkpoint) -> VGGRelu12:
    """Copy conv1_1 / conv1_2 from torchvision VGG19 weights into ``module``.

    ``checkpoint``: a path or a state dict with ``features.N.weight`` / ``features.N.bias``
    (the full ``vgg19`` state dict, or only its ``features``; ``classifier.*`` and deeper
    features are ignored). Raises KeyError naming missing or foreign keys, ValueError
    naming wrong shapes.
    """
    state = {(k[len("module."):] if k.startswith("module.") else k): v
             for k, v in _state_dict(checkpoint).items()}
    foreign = sorted(k for k in state if not k.startswith(("features.", "classifier.")))
    if foreign:
        raise KeyError(f"not torchvision VGG weights: unexpected keys {foreign}")
    own = module.model.state_dict()
    wanted = {f"features.{tv}.{name}": f"{ours}.{name}"
              for tv, ours in _TORCHVISION_CONVS.items() for name in ("weight", "bias")}
    missing = sorted(k for k in wanted if k not in state)
    if missing:
        raise KeyError(f"VGG weights lack conv1_1/conv1_2: missing keys {missing}")
    bad = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[v].shape)}"
           for k, v in wanted.items() if tuple(state[k].shape) != tuple(own[v].shape)]
    if bad:
        raise ValueError("VGG weights have the wrong shapes: " + "; ".join(bad))
    module.model.load_state_dict({v: state[k] for k, v in wanted.items()}, strict=True)
    return module
