"""dwconv_gate_ca: NAFNet's middle — depthwise conv, SimpleGate, simplified channel attention."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sr_ops import _validate as v


def check(x, dw_weight, dw_bias, ca_weight, ca_bias, gate):
    """Argument checks shared with the public op; every message names its argument."""
    names = ("x", "dw_weight", "dw_bias", "ca_weight", "ca_bias")
    args = (x, dw_weight, dw_bias, ca_weight, ca_bias)
    for t, name in zip(args, names):
        v.tensor(t, name)
        v.same_device(t, name, x, "x")
    v.boolean(gate, "gate")
    v.tensor(x, "x", dims=4, doc="(B, C, H, W)")
    C = v.channels(x, "x", "dwconv_gate_ca")
    if dw_weight.dim() != 4 or dw_weight.shape[0] != C or dw_weight.shape[1] != 1 \
            or dw_weight.shape[2] != dw_weight.shape[3]:
        raise ValueError(f"dw_weight must be (C, 1, k, k) with C = {C} (x's channels), "
                         f"got shape {tuple(dw_weight.shape)}")
    k = dw_weight.shape[2]
    if k % 2 == 0:
        raise ValueError(f"dw_weight's kernel size must be odd (zero padding k//2 keeps the size), got k = {k}")
    v.shape(dw_bias, "dw_bias", (C,), "(C,)")
    if gate and C % 2:
        raise ValueError(f"x must have an even number of channels when gate=True, got shape {tuple(x.shape)}")
    Cg = C // 2 if gate else C
    if tuple(ca_weight.shape) != (Cg, Cg, 1, 1):
        raise ValueError(f"ca_weight must be (C', C', 1, 1) with C' = {Cg} (channels after the gate), "
                         f"got shape {tuple(ca_weight.shape)}")
    v.shape(ca_bias, "ca_bias", (Cg,), "(C',)")
    return k, Cg


def dwconv_gate_ca(x: torch.Tensor, dw_weight: torch.Tensor, dw_bias: torch.Tensor,
                   ca_weight: torch.Tensor, ca_bias: torch.Tensor, gate: bool = True) -> torch.Tensor:
    """x (B, C, H, W) -> (B, C', H, W): u = depthwise k x k conv of x (zero padding k//2);
    y = u[:, :C/2] * u[:, C/2:] when gate (C' = C/2), else y = u (C' = C);
    out = y * (ca_weight @ mean_hw(y) + ca_bias), per batch item and channel. Computed in
    float32 at least, rounded to x's dtype once at the end. An empty map (B, H or W = 0)
    gives an empty result (F.conv2d refuses one)."""
    k, Cg = check(x, dw_weight, dw_bias, ca_weight, ca_bias, gate)
    B, C, H, W = x.shape
    if x.numel() == 0:
        return x.new_empty((B, Cg, H, W))
    dtype = x.dtype
    for t in (dw_weight, dw_bias, ca_weight, ca_bias):
        dtype = torch.promote_types(dtype, t.dtype)
    dtype = torch.promote_types(dtype, torch.float32)
    u = F.conv2d(x.to(dtype), dw_weight.to(dtype), dw_bias.to(dtype), padding=k // 2, groups=C)
    if gate:
        a, b = u.chunk(2, dim=1)
        u = a * b
    att = F.conv2d(u.mean((2, 3), keepdim=True), ca_weight.to(dtype), ca_bias.to(dtype))
    return (u * att).to(x.dtype)
