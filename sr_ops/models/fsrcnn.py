"""FSRCNN (Dong et al., "Accelerating the Super-Resolution Convolutional Neural Network",
ECCV 2016), in the two forms whose weights exist:

* ``FSRCNN`` — yjn870/FSRCNN-pytorch (d=56, s=12, m=4), trained on the Y channel: a PReLU
  with one slope per channel after every conv, and a 9x9 transposed conv (padding 4,
  output padding s-1).  As an RGB model it super-resolves Y and upsamples Cb/Cr bicubically
  (MATLAB ``imresize``); ``forward_y`` is the raw Y-channel network.
* ``ClassSRFSRCNN`` — ClassSR's branch (Kong et al., CVPR 2021; d=16/36/56 for its three
  classes) on RGB: one shared PReLU slope per activation, no activation between the four
  3x3 mapping convs, a 9x9 stride-4 transposed conv with padding 3, output padding 1
  (x4 only).

Both keep their checkpoints' parameter names.  The transposed conv runs as the equivalent
sub-pixel convolution (a small ordinary conv to C*s^2 channels, then PixelShuffle(s)):
same result to float rounding and ~2x faster on the CPU than ``conv_transpose2d``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import sr_ops
from sr_ops.models import register
from sr_ops.models._checkpoints import check_rgb, check_scale, load_strict, read_state_dict
from sr_ops.models.blocks import shuffle_clamp_into

__all__ = ["ClassSRFSRCNN", "FSRCNN", "build_fsrcnn", "detect_variant", "rgb_to_ycbcr", "shuffle_clamp_into",
           "subpixel_deconv", "ycbcr_to_rgb"]

# BT.601 "studio swing" YCbCr on the 0-255 scale, as yjn870's utils.py writes it.
_TO_YCBCR = torch.tensor([[64.738, 129.057, 25.064],
                          [-37.945, -74.494, 112.439],
                          [112.439, -94.154, -18.285]], dtype=torch.float64) / 256
_YCBCR_OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> YCbCr in [0, 1] (each channel / 255)."""
    m = _TO_YCBCR.to(x)
    return torch.einsum("oc,bchw->bohw", m, x) + (_YCBCR_OFFSET / 255).to(x).view(1, 3, 1, 1)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of ``rgb_to_ycbcr``."""
    inv = torch.linalg.inv(_TO_YCBCR).to(x)
    return torch.einsum("oc,bchw->bohw", inv, x - (_YCBCR_OFFSET / 255).to(x).view(1, 3, 1, 1))


def _subpixel_weight(weight: torch.Tensor, stride: int, padding: int) -> tuple[torch.Tensor, int]:
    """Rewrite a transposed-conv weight (Cin, Cout, K, K) as an ordinary conv weight
    (Cout*s*s, Cin, k, k) whose PixelShuffle(s) output equals the transposed conv's.

    Output pixel s*q + phase takes input q - j through tap s*j + phase + padding; the conv
    tap at offset d = -j (zero where that tap falls outside the K x K kernel).
    """
    cin, cout, K, _ = weight.shape
    offsets = [j for ph in range(stride) for j in range(-K, K + 1) if 0 <= stride * j + ph + padding < K]
    pad = max(max(offsets), -min(offsets))
    k = 2 * pad + 1
    d = torch.arange(-pad, pad + 1, device=weight.device)
    phase = torch.arange(stride, device=weight.device)
    taps = -stride * d.view(1, k) + phase.view(stride, 1) + padding  # (phase, offset) -> kernel tap
    valid = (taps >= 0) & (taps < K)
    taps = taps.clamp(0, K - 1)
    # gather rows then columns: w[ci, co, taps[py, dy], taps[px, dx]]
    w = weight[:, :, taps.view(-1), :][:, :, :, taps.view(-1)]  # (Cin, Cout, s*k, s*k)
    w = w.view(cin, cout, stride, k, stride, k)
    mask = (valid.view(stride, k, 1, 1) & valid.view(1, 1, stride, k)).to(weight.dtype)
    w = w * mask
    w = w.permute(1, 2, 4, 0, 3, 5).reshape(cout * stride * stride, cin, k, k)
    return w, pad


def _check_stride_exact(deconv: nn.ConvTranspose2d) -> None:
    (s, _), (p, _) = deconv.stride, deconv.padding
    (K, _), (op, _) = deconv.kernel_size, deconv.output_padding
    if -2 * p + K + op != s:
        raise ValueError("subpixel_deconv needs output size = stride * input size "
                         f"(kernel {K}, stride {s}, padding {p}, output_padding {op})")


def _subpixel_conv(x: torch.Tensor, deconv: nn.ConvTranspose2d) -> torch.Tensor:
    """The conv half: (N, Cin, H, W) -> (N, Cout*s*s, H, W), before PixelShuffle(s)."""
    _check_stride_exact(deconv)
    s, p = deconv.stride[0], deconv.padding[0]
    weight, pad = _subpixel_weight(deconv.weight, s, p)
    bias = None if deconv.bias is None else deconv.bias.repeat_interleave(s * s)
    return F.conv2d(x, weight, bias, padding=pad)


def subpixel_deconv(x: torch.Tensor, deconv: nn.ConvTranspose2d) -> torch.Tensor:
    """``deconv(x)`` for a transposed conv whose output is exactly ``stride`` times its input."""
    return F.pixel_shuffle(_subpixel_conv(x, deconv), deconv.stride[0])


class FSRCNN(nn.Module):
    """yjn870's Y-channel FSRCNN.  ``forward``: RGB (B, 3, H, W) in [0, 1] -> (B, 3, sH, sW)
    (Y from the network, Cb/Cr bicubic); ``forward_y``: (B, 1, H, W) -> (B, 1, sH, sW)."""

    def __init__(self, scale: int, d: int = 56, s: int = 12, m: int = 4, clamp: bool = True,
                 subpixel: bool = True) -> None:
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale must be a positive int, got {scale!r}")
        self.scale, self.clamp, self.subpixel = scale, clamp, subpixel
        self.first_part = nn.Sequential(nn.Conv2d(1, d, 5, padding=2), nn.PReLU(d))
        mid: list[nn.Module] = [nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            mid += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        mid += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.mid_part = nn.Sequential(*mid)
        self.last_part = nn.ConvTranspose2d(d, 1, 9, stride=scale, padding=4, output_padding=scale - 1)

    def forward_y(self, y: torch.Tensor) -> torch.Tensor:
        feat = self.mid_part(self.first_part(y))
        return subpixel_deconv(feat, self.last_part) if self.subpixel else self.last_part(feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_rgb(x)
        ycc = rgb_to_ycbcr(x)
        y = self.forward_y(ycc[:, :1])
        cbcr = sr_ops.imresize(ycc[:, 1:], self.scale)
        out = ycbcr_to_rgb(torch.cat([y, cbcr], dim=1))
        return out.clamp(0.0, 1.0) if self.clamp else out


class ClassSRFSRCNN(nn.Module):
    """ClassSR's FSRCNN branch: RGB (B, 3, H, W) in [0, 1] -> (B, 3, 4H, 4W)."""

    writes_into_out = True  # forward(x, out=...) fills a caller's buffer (see ClassSR)

    def __init__(self, scale: int = 4, d: int = 56, s: int = 12, m: int = 4, clamp: bool = True,
                 subpixel: bool = True, channels_last: bool = True) -> None:
        super().__init__()
        check_scale(scale, (4,), "ClassSR's FSRCNN branch (its 9x9 deconv has padding 3, output padding 1)")
        self.scale, self.d, self.clamp, self.subpixel = scale, d, clamp, subpixel
        self.channels_last = channels_last
        self.head_conv = nn.Sequential(nn.Conv2d(3, d, 5, padding=2), nn.PReLU())
        body: list[nn.Module] = [nn.Sequential(nn.Conv2d(d, s, 1), nn.PReLU())]
        body += [nn.Conv2d(s, s, 3, padding=1) for _ in range(m)]
        body += [nn.PReLU(), nn.Sequential(nn.Conv2d(s, d, 1), nn.PReLU())]
        self.body_conv = nn.Sequential(*body)
        self.tail_conv = nn.ConvTranspose2d(d, 3, 9, stride=scale, padding=3, output_padding=1)

    def forward(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``out``: optional contiguous (B, 3, 4H, 4W) buffer to write into (inference only;
        ClassSR passes its slice of the merged batch, saving a copy)."""
        check_rgb(x)
        if self.channels_last:  # oneDNN's convs run ~1.3x faster on NHWC at these widths
            x = x.contiguous(memory_format=torch.channels_last)
        feat = self.body_conv(self.head_conv(x))
        grad = torch.is_grad_enabled() and (feat.requires_grad or x.requires_grad)
        if out is not None and grad:
            raise ValueError("out= is for inference only (no autograd through it)")
        if not self.subpixel:
            y = self.tail_conv(feat)
            y = y.clamp(0.0, 1.0) if self.clamp else y
            return y if out is None else out.copy_(y)
        if grad:
            y = subpixel_deconv(feat, self.tail_conv)
            return y.clamp(0.0, 1.0) if self.clamp else y
        return shuffle_clamp_into(_subpixel_conv(feat, self.tail_conv), self.scale, out, self.clamp)


def detect_variant(state: dict) -> str:
    """"yjn870" or "classsr" from an FSRCNN state dict's key names."""
    if "first_part.0.weight" in state:
        return "yjn870"
    if "head_conv.0.weight" in state:
        return "classsr"
    raise KeyError("not an FSRCNN checkpoint: neither 'first_part.0.weight' (yjn870) nor "
                   "'head_conv.0.weight' (ClassSR branch) is among its keys")


@register("fsrcnn")
def build_fsrcnn(scale: int, checkpoint=None, *, variant: str | None = None, d: int | None = None,
                 s: int = 12, m: int = 4, clamp: bool = True, subpixel: bool = True) -> nn.Module:
    """FSRCNN.  ``variant``: "yjn870" (Y channel, default) or "classsr" (ClassSR's RGB x4
    branch); with a checkpoint it and ``d`` are read from the keys unless given, so
    ``build("fsrcnn", 4, ".../classsr/FSRCNN_branch1.pth")`` gives the d=16 branch."""
    state = read_state_dict(checkpoint) if checkpoint is not None else None
    if variant is None:
        variant = detect_variant(state) if state is not None else "yjn870"
    if variant not in ("yjn870", "classsr"):
        raise ValueError(f"variant must be 'yjn870' or 'classsr', got {variant!r}")
    first = "first_part.0.weight" if variant == "yjn870" else "head_conv.0.weight"
    if d is None:
        d = int(state[first].shape[0]) if state is not None and first in state else 56
    cls = FSRCNN if variant == "yjn870" else ClassSRFSRCNN
    model = cls(scale, d=d, s=s, m=m, clamp=clamp, subpixel=subpixel)
    if state is not None:
        load_strict(model, state, f"FSRCNN ({variant}, d={d}, x{scale})")
    return model
