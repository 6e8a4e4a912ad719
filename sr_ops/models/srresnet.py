"""MSRResNet, the "modified SRResNet" of BasicSR/MMSR that ClassSR uses as a backbone
(Kong et al., CVPR 2021; its branches have nf = 36, 52 and 64).

Parameter names follow the official code, so ``SRResNet_branch{1,2}.pth`` load as they are::

    x -> conv_first 3x3 -> LReLU(0.1) -> recon_trunk: nb x [conv1 3x3, ReLU, conv2 3x3, + skip]
      -> upconv1 (to 4nf or 9nf) -> PixelShuffle -> LReLU [-> upconv2 -> PixelShuffle -> LReLU]
      -> HRconv 3x3 -> LReLU -> conv_last 3x3  + bilinear upsampling of x

There is no batch norm and no mean shift: RGB in [0, 1] in and out.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sr_ops.models import register
from sr_ops.models._checkpoints import check_rgb, check_scale, load_strict, read_state_dict

__all__ = ["MSRResNet", "ResidualBlockNoBN", "build_srresnet"]


class ResidualBlockNoBN(nn.Module):
    """x + conv2(relu(conv1(x)))."""

    def __init__(self, nf: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv2 = nn.Conv2d(nf, nf, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(torch.relu(self.conv1(x)))


class MSRResNet(nn.Module):
    """RGB (B, 3, H, W) in [0, 1] -> (B, 3, s*H, s*W), s in {2, 3, 4}, any H, W >= 1."""

    def __init__(self, scale: int = 4, nf: int = 64, nb: int = 16, clamp: bool = True) -> None:
        super().__init__()
        check_scale(scale, (2, 3, 4), "MSRResNet")
        for value, what in [(nf, "nf"), (nb, "nb")]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{what} must be a positive int, got {value!r}")
        self.scale, self.nf, self.clamp = scale, nf, clamp
        self.conv_first = nn.Conv2d(3, nf, 3, padding=1)
        self.recon_trunk = nn.Sequential(*[ResidualBlockNoBN(nf) for _ in range(nb)])
        self.upconv1 = nn.Conv2d(nf, nf * (9 if scale == 3 else 4), 3, padding=1)
        if scale == 4:
            self.upconv2 = nn.Conv2d(nf, nf * 4, 3, padding=1)
        self.HRconv = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_last = nn.Conv2d(nf, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_rgb(x)
        lrelu = lambda t: F.leaky_relu(t, 0.1)  # noqa: E731
        feat = self.recon_trunk(lrelu(self.conv_first(x)))
        r = 3 if self.scale == 3 else 2
        feat = lrelu(F.pixel_shuffle(self.upconv1(feat), r))
        if self.scale == 4:
            feat = lrelu(F.pixel_shuffle(self.upconv2(feat), 2))
        out = self.conv_last(lrelu(self.HRconv(feat)))
        out = out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return out.clamp(0.0, 1.0) if self.clamp else out


@register("srresnet")
def build_srresnet(scale: int, checkpoint=None, *, nf: int | None = None, nb: int | None = None,
                   clamp: bool = True) -> MSRResNet:
    """MSRResNet (default nf=64, nb=16); with a checkpoint, ``nf`` and ``nb`` are read from
    its keys unless given (``SRResNet_branch1.pth``: nf=36, ``branch2``: nf=52)."""
    state = read_state_dict(checkpoint) if checkpoint is not None else None
    if state is not None:
        if nf is None and "conv_first.weight" in state:
            nf = int(state["conv_first.weight"].shape[0])
        if nb is None:
            blocks = {int(k.split(".")[1]) for k in state if k.startswith("recon_trunk.")}
            nb = max(blocks) + 1 if blocks else None
    model = MSRResNet(scale, nf=64 if nf is None else nf, nb=16 if nb is None else nb, clamp=clamp)
    if state is not None:
        load_strict(model, state, f"MSRResNet (nf={model.nf}, x{scale})")
    return model
