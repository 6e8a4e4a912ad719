"""NAFNet blocks on the fused ops, and a small NAFNet-based SR network ("nafnet_sr").

``NAFBlock`` keeps the parameter names of the official NAFNet code (Chen et al., 2022,
megvii-research/NAFNet), so its checkpoints' block weights load unchanged: ``norm1``,
``conv1`` (1x1, c -> 2c), ``conv2`` (3x3 depthwise), ``sca.1`` (1x1 of the pooled map),
``conv3`` (1x1, c -> c), ``beta``, ``norm2``, ``conv4`` (1x1, c -> 2c), ``conv5`` (1x1,
c -> c), ``gamma``. Its forward runs conv2 -> SimpleGate -> simplified channel attention
as one ``sr_ops.dwconv_gate_ca`` call, norm1 as ``sr_ops.layernorm2d``, and the FFN half
(norm2 -> conv4 -> SimpleGate -> conv5 -> * gamma + y) as one ``sr_ops.naf_ffn`` call.

On the CPU the block runs channels-last: oneDNN runs the 1x1 convolutions about three times
faster on such maps than NCHW (BLAS or oneDNN), and the three sr_ops kernels read them in place;
its output stays channels-last (``NAFNetSR`` returns a contiguous image). Elsewhere the 1x1s are
batched GEMMs on NCHW maps.

Differences from the official code: the same arithmetic, regrouped -- SimpleGate and the
attention scale inside ``dwconv_gate_ca``, ``inp + conv3(x) * beta`` as one ``addcmul``, the FFN
half in one op -- so outputs match it to float32 rounding, not bit for bit.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import sr_ops
from sr_ops.models import register
from sr_ops.models._checkpoints import load_file
from sr_ops.models.blocks import LayerNorm2d

__all__ = ["NAFBlock", "NAFNetSR"]


def _pointwise_channels_last(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 conv of a channels-last map: oneDNN's convolution (161 GFLOP/s at 64 -> 128
    channels on 2 cores, against 47 for the BLAS GEMM on the NCHW map); channels-last out."""
    return F.conv2d(x.contiguous(memory_format=torch.channels_last), conv.weight, conv.bias)


def _pointwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 conv as one batched GEMM, (O, I) @ (B, I, H*W) with the bias as its initial
    value (GPU: cuBLAS)."""
    B, C, H, W = x.shape
    w = conv.weight.view(conv.out_channels, C)
    if B == 1:
        flat = x.reshape(C, H * W)
        out = w @ flat if conv.bias is None else torch.addmm(conv.bias.view(-1, 1), w, flat)
    else:
        flat = x.reshape(B, C, H * W)
        w = w.expand(B, -1, -1)
        out = torch.matmul(w, flat) if conv.bias is None else torch.baddbmm(conv.bias.view(1, -1, 1), w, flat)
    return out.view(B, conv.out_channels, H, W)


class NAFBlock(nn.Module):
    """NAFNet's block: x + beta * attn(norm1(x)), then + gamma * ffn(norm2(.)).

    Args:
        c: channels.
        dw_expand / ffn_expand: channel expansion of the depthwise and the FFN branches
            (2 and 2 in NAFNet; each is halved again by its SimpleGate).
        kernel_size: the depthwise kernel (odd; 3 in NAFNet).
    """

    def __init__(self, c: int, dw_expand: int = 2, ffn_expand: int = 2, kernel_size: int = 3) -> None:
        super().__init__()
        dw = c * dw_expand
        ffn = c * ffn_expand
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, kernel_size, padding=kernel_size // 2, groups=dw)
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        if inp.device.type == "cpu" and inp.dim() == 4:
            inp = sr_ops.to_channels_last(inp)  # returns inp itself between blocks
            pointwise = _pointwise_channels_last
        else:
            pointwise = _pointwise
        x = pointwise(self.conv1, self.norm1(inp))
        x = sr_ops.dwconv_gate_ca(x, self.conv2.weight, self.conv2.bias, self.sca[1].weight, self.sca[1].bias)
        y = torch.addcmul(inp, pointwise(self.conv3, x), self.beta)  # inp + conv3(x) * beta, one pass
        # norm2 -> conv4 -> SimpleGate -> conv5 -> * gamma + y in one op, tile by tile
        return sr_ops.naf_ffn(y, self.norm2.weight, self.norm2.bias, self.conv4.weight, self.conv4.bias,
                              self.conv5.weight, self.conv5.bias, self.gamma, self.norm2.eps)


class NAFNetSR(nn.Module):
    """Head 3x3 conv -> ``depth`` NAFBlocks -> 3x3 conv (+ the head's features) -> 3x3 conv
    to 3*scale^2 channels -> PixelShuffle, plus the bilinearly upscaled input. RGB in [0, 1]
    in and out (the output is clamped)."""

    def __init__(self, scale: int, width: int = 32, depth: int = 4, kernel_size: int = 3) -> None:
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale must be a positive int, got {scale!r}")
        for v, name in [(width, "width"), (depth, "depth")]:
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "width" else 0):
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.scale = scale
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Sequential(*[NAFBlock(width, kernel_size=kernel_size) for _ in range(depth)])
        self.body_conv = nn.Conv2d(width, width, 3, padding=1)
        self.upsample = nn.Sequential(nn.Conv2d(width, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an RGB batch (B, 3, H, W), got shape {tuple(x.shape)}")
        feat = self.head(x)
        feat = feat + self.body_conv(self.body(feat))
        base = x if self.scale == 1 else F.interpolate(x, scale_factor=self.scale, mode="bilinear",
                                                       align_corners=False)
        return (self.upsample(feat) + base).clamp(0, 1).contiguous()


@register("nafnet_sr")
def _build_nafnet_sr(scale, checkpoint=None, width: int = 32, depth: int = 4, **options) -> nn.Module:
    model = NAFNetSR(scale, width=width, depth=depth, **options)
    if checkpoint is not None:
        state = checkpoint if isinstance(checkpoint, dict) else load_file(checkpoint)
        for key in ("params_ema", "params", "state_dict"):  # BasicSR-style wrappers
            if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                state = state[key]
                break
        model.load_state_dict(state)
    return model
