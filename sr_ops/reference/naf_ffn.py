"""naf_ffn: the second half of a NAFNet block (norm2 -> conv4 -> SimpleGate -> conv5 ->
* gamma + residual), composed from plain PyTorch ops: the baseline and the oracle."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sr_ops import _validate as v
from sr_ops.reference.layernorm2d import layernorm2d


def check(y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps):
    for t, name in [(y, "y"), (norm_weight, "norm_weight"), (norm_bias, "norm_bias"), (w_in, "w_in"),
                    (b_in, "b_in"), (w_out, "w_out"), (b_out, "b_out"), (gamma, "gamma")]:
        v.tensor(t, name)
        v.same_device(t, name, y, "y")
    v.tensor(y, "y", dims=4, doc="(B, C, H, W)")
    C = v.channels(y, "y", "naf_ffn")
    if w_in.dim() != 4 or w_in.shape[1:] != (C, 1, 1) or w_in.shape[0] == 0 or w_in.shape[0] % 2:
        raise ValueError(f"w_in must be (2F, C={C}, 1, 1) with F >= 1 (the 1x1 conv before SimpleGate), "
                         f"got {tuple(w_in.shape)}")
    F_ = w_in.shape[0] // 2
    want = {"norm_weight": (norm_weight, (C,)), "norm_bias": (norm_bias, (C,)), "b_in": (b_in, (2 * F_,)),
            "w_out": (w_out, (C, F_, 1, 1)), "b_out": (b_out, (C,))}
    for name, (t, shape) in want.items():
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} for y {tuple(y.shape)} and w_in "
                             f"{tuple(w_in.shape)}, got {tuple(t.shape)}")
    if gamma.numel() != C or gamma.dim() not in (1, 4) or (gamma.dim() == 4 and gamma.shape[1] != C):
        raise ValueError(f"gamma must be (C,) or (1, C, 1, 1) with C={C}, got {tuple(gamma.shape)}")
    v.eps(eps)


def naf_ffn(y: torch.Tensor, norm_weight: torch.Tensor, norm_bias: torch.Tensor, w_in: torch.Tensor,
            b_in: torch.Tensor, w_out: torch.Tensor, b_out: torch.Tensor, gamma: torch.Tensor,
            eps: float = 1e-6) -> torch.Tensor:
    """y (B, C, H, W) -> y + gamma * conv_out(gate(conv_in(layernorm2d(y)))), in y's dtype
    (computed in float32 at least): w_in (2F, C, 1, 1), b_in (2F,), w_out (C, F, 1, 1),
    b_out (C,), gamma (C,) or (1, C, 1, 1); gate(h) = h[:, :F] * h[:, F:]."""
    check(y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, eps)
    dtype = torch.promote_types(y.dtype, torch.float32)
    cast = [t.to(dtype) for t in (y, norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma)]
    yf, nw, nb, wi, bi, wo, bo, g = cast
    h = F.conv2d(layernorm2d(yf, nw, nb, eps), wi, bi)
    a, b = h.chunk(2, dim=1)
    out = yf + g.reshape(1, -1, 1, 1) * F.conv2d(a * b, wo, bo)
    return out.to(y.dtype)
