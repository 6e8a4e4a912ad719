"""CARN-M (Ahn et al., "Fast, Accurate, and Lightweight Super-Resolution with Cascading
Residual Network", ECCV 2018), in two flavours with their checkpoints' parameter names:

* ``variant="official"`` — nmhkahn/CARN-pytorch ``carn_m``: 64 features, group 4, 1x1
  cascade convs with bias + ReLU (``c1.body.0``), mean shifts as ``sub_mean.shifter``, one
  multi-scale model holding the x2, x3 and x4 upsamplers (``upsample.up2/up3/up4``), so
  ``carn_m.pth`` serves every scale.
* ``variant="classsr"`` — ClassSR's CARN_M branches (Kong et al., CVPR 2021): width ``nf``
  (36/52/64), 1x1 cascade convs without bias followed by BatchNorm + ReLU (``c1.0``,
  ``c1.1``), plain-conv mean shifts (``sub_mean``), one upsampler (``upsample.up``).

Both share the structure (group-``g`` convs in the efficient residual block, whose weights
are reused three times inside each cascading block)::

    x - mean -> entry 3x3 -> 3 x [cascading block, concat, 1x1] -> upsampler
      -> exit 3x3 -> + mean

Inputs and outputs are RGB in [0, 1] (the mean shift is (0.4488, 0.4371, 0.4040)).
"""
from __future__ import annotations

import torch
from torch import nn

from sr_ops.models import register
from sr_ops.models._checkpoints import check_rgb, check_scale, load_strict, read_state_dict

__all__ = ["CARNM", "build_carn_m", "detect_variant"]

RGB_MEAN = (0.4488, 0.4371, 0.4040)
VARIANTS = ("official", "classsr")


def _mean_conv(sign: float) -> nn.Conv2d:
    conv = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        conv.bias.copy_(sign * torch.tensor(RGB_MEAN))
    conv.requires_grad_(False)  # a fixed shift in both official trainings
    return conv


class _Shifter(nn.Module):
    """nmhkahn's MeanShift: the 1x1 conv lives under ``.shifter``."""

    def __init__(self, sign: float) -> None:
        super().__init__()
        self.shifter = _mean_conv(sign)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shifter(x)


class _Body(nn.Module):
    """Holds a Sequential under ``.body`` (nmhkahn's BasicBlock / upsampler naming)."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _pointwise(cin: int, cout: int, batch_norm: bool) -> nn.Module:
    """The cascade's 1x1 fusion conv + ReLU (ClassSR: bias-free conv + BatchNorm)."""
    if batch_norm:
        return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
    return _Body(nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True))


class EResidualBlock(nn.Module):
    """relu(x + [3x3 group conv, ReLU, 3x3 group conv, ReLU, 1x1](x))."""

    def __init__(self, nf: int, group: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(nf, nf, 3, padding=1, groups=group), nn.ReLU(inplace=True),
            nn.Conv2d(nf, nf, 3, padding=1, groups=group), nn.ReLU(inplace=True),
            nn.Conv2d(nf, nf, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + x)


class CascadingBlock(nn.Module):
    """Three passes of one shared ``b1``, each followed by a 1x1 fusion of all features so far."""

    def __init__(self, nf: int, group: int, batch_norm: bool) -> None:
        super().__init__()
        self.b1 = EResidualBlock(nf, group)
        self.c1 = _pointwise(2 * nf, nf, batch_norm)
        self.c2 = _pointwise(3 * nf, nf, batch_norm)
        self.c3 = _pointwise(4 * nf, nf, batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _cascade(x, self.b1, self.b1, self.b1, self.c1, self.c2, self.c3)


def _cascade(x, b1, b2, b3, c1, c2, c3) -> torch.Tensor:
    cat = torch.cat([x, b1(x)], dim=1)
    o = c1(cat)
    cat = torch.cat([cat, b2(o)], dim=1)
    o = c2(cat)
    cat = torch.cat([cat, b3(o)], dim=1)
    return c3(cat)


def _upsampler(nf: int, scale: int, group: int) -> _Body:
    """[group 3x3 conv to r^2 nf, ReLU, PixelShuffle(r)] for r = 3, or twice r = 2 for x4."""
    steps = {2: [2], 3: [3], 4: [2, 2]}[scale]
    layers: list[nn.Module] = []
    for r in steps:
        layers += [nn.Conv2d(nf, r * r * nf, 3, padding=1, groups=group), nn.ReLU(inplace=True),
                   nn.PixelShuffle(r)]
    return _Body(*layers)


class CARNM(nn.Module):
    """CARN-M: RGB (B, 3, H, W) in [0, 1] -> (B, 3, s*H, s*W), any H, W >= 1.

    Args:
        scale: 2, 3 or 4 (the upsampler used; with ``multi_scale`` all three are built).
        nf: features (64 official; ClassSR branches 36/52/64); divisible by ``group``.
        group: groups of the 3x3 convs of the residual blocks and the upsampler.
        variant: "official" (nmhkahn) or "classsr" (BatchNorm 1x1 convs); see the module doc.
        multi_scale: hold up2/up3/up4 (the official checkpoint) instead of one ``up``.
        clamp: clip the output to [0, 1] (neither official model does; PSNR is unaffected).
    """

    def __init__(self, scale: int = 4, nf: int = 64, group: int = 4, variant: str = "official",
                 multi_scale: bool | None = None, clamp: bool = True) -> None:
        super().__init__()
        check_scale(scale, (2, 3, 4), "CARN-M")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        for value, what in [(nf, "nf"), (group, "group")]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{what} must be a positive int, got {value!r}")
        if nf % group:
            raise ValueError(f"nf ({nf}) must be divisible by group ({group})")
        classsr = variant == "classsr"
        multi_scale = (not classsr) if multi_scale is None else bool(multi_scale)
        self.scale, self.nf, self.group, self.variant, self.clamp = scale, nf, group, variant, clamp
        self.sub_mean = _mean_conv(-1.0) if classsr else _Shifter(-1.0)
        self.add_mean = _mean_conv(1.0) if classsr else _Shifter(1.0)
        self.entry = nn.Conv2d(3, nf, 3, padding=1)
        self.b1 = CascadingBlock(nf, group, classsr)
        self.b2 = CascadingBlock(nf, group, classsr)
        self.b3 = CascadingBlock(nf, group, classsr)
        self.c1 = _pointwise(2 * nf, nf, classsr)
        self.c2 = _pointwise(3 * nf, nf, classsr)
        self.c3 = _pointwise(4 * nf, nf, classsr)
        if multi_scale:
            self.upsample = nn.ModuleDict({f"up{s}": _upsampler(nf, s, group) for s in (2, 3, 4)})
            self._up = f"up{scale}"
        else:
            self.upsample = nn.ModuleDict({"up": _upsampler(nf, scale, group)})
            self._up = "up"
        self.exit = nn.Conv2d(nf, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_rgb(x)
        feat = self.entry(self.sub_mean(x))
        feat = _cascade(feat, self.b1, self.b2, self.b3, self.c1, self.c2, self.c3)
        out = self.add_mean(self.exit(self.upsample[self._up](feat)))
        return out.clamp(0.0, 1.0) if self.clamp else out


def detect_variant(state: dict) -> str:
    """"official" or "classsr" from a CARN-M state dict's key names."""
    if "sub_mean.shifter.weight" in state:
        return "official"
    if "sub_mean.weight" in state:
        return "classsr"
    raise KeyError("not a CARN-M checkpoint: neither 'sub_mean.shifter.weight' (nmhkahn) nor "
                   "'sub_mean.weight' (ClassSR) is among its keys")


@register("carn_m")
def build_carn_m(scale: int, checkpoint=None, *, variant: str | None = None, nf: int | None = None,
                 group: int = 4, multi_scale: bool | None = None, clamp: bool = True) -> CARNM:
    """CARN-M for x2/x3/x4.  With a checkpoint, the variant (nmhkahn's or ClassSR's), the
    width and multi-scale are read from its keys unless given, so
    ``build("carn_m", 4, ".../classsr/CARN_branch1.pth")`` gives ClassSR's nf=36 branch."""
    state = read_state_dict(checkpoint) if checkpoint is not None else None
    if variant is None:
        variant = detect_variant(state) if state is not None else "official"
    if state is not None:
        if nf is None and "entry.weight" in state:
            nf = int(state["entry.weight"].shape[0])
        if multi_scale is None:
            multi_scale = any(k.startswith("upsample.up2.") for k in state)
    model = CARNM(scale, nf=64 if nf is None else nf, group=group, variant=variant,
                  multi_scale=multi_scale, clamp=clamp)
    if state is not None:
        load_strict(model, state, f"CARN-M ({variant}, nf={model.nf}, x{scale})")
    return model
