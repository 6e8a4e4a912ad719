"""Geometric self-ensemble (the "+" of EDSR+, IGNN+): average the model over the eight
flips and 90-degree rotations of the input, each output mapped back first.

    >>> sr = sr_ops.self_ensemble(model, lr)             # (B, C, H, W) -> (B, C', sH, sW)
    >>> sr = sr_ops.tiled(lambda t: sr_ops.self_ensemble(model, t), lr, 2)   # both

Costs eight model calls; memory is one model call plus one output-sized accumulator.
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["self_ensemble", "TRANSFORMS"]

# (flip left-right first?, quarter turns counter-clockwise): the dihedral group D4.
TRANSFORMS = tuple((flip, turns) for flip in (False, True) for turns in range(4))


def _forward(t: torch.Tensor, flip: bool, turns: int) -> torch.Tensor:
    if flip:
        t = t.flip(-1)
    return torch.rot90(t, turns, dims=(-2, -1)).contiguous()


def _inverse(t: torch.Tensor, flip: bool, turns: int) -> torch.Tensor:
    t = torch.rot90(t, -turns, dims=(-2, -1))
    return t.flip(-1) if flip else t


def self_ensemble(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Mean of ``T^-1(model(T(x)))`` over the 8 transforms T of D4.

    x: (B, C, H, W) or (C, H, W) float; the model must accept transposed (W x H) inputs.
    Runs without autograd.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"x must be a floating-point tensor, got {got}")
    if x.dim() not in (3, 4):
        raise ValueError(f"x must be (B, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    total = None
    with torch.no_grad():
        for flip, turns in TRANSFORMS:
            y = _inverse(model(_forward(x, flip, turns)), flip, turns)
            if total is None:
                out_dtype = y.dtype
                # accumulate in float32 at least: eight half-precision adds lose bits
                total = y.to(torch.promote_types(y.dtype, torch.float32), copy=True)
            else:
                if y.shape != total.shape:
                    raise ValueError(f"model output {tuple(y.shape)} under transform (flip={flip}, turns={turns}) "
                                     f"does not map back to {tuple(total.shape)}")
                total.add_(y)
            del y
    return total.div_(len(TRANSFORMS)).to(out_dtype)
