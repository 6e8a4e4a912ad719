"""Structural re-parameterisation: fold train-time multi-branch blocks into one conv.

The block folded here is the "residual in residual" block RT4KSR uses (from ECBSR /
OREPA style re-parameterisation)::

    e = expand(x)                         1x1 conv, C -> M channels, bias b0
    f = fea(pad(e, value=b0)) + e         3x3 conv, M -> M, no padding, bias b1; identity
    y = reduce(f) + x                     1x1 conv, M -> C, bias b2; identity

Padding ``e`` with its own bias b0 (rather than with zeros) makes the border exactly what
``expand`` would give on a zero-padded ``x``, so the whole block equals one 3x3 conv of
``x`` with zero padding 1.  Composition of linear maps, computed in float64:

    W01[m, c, i, j] = sum_k k1[m, k, i, j] k0[k, c]  +  [i = j = 1] k0[m, c]
    b01[m]          = b1[m] + sum_{k,i,j} k1[m, k, i, j] b0[k]  +  b0[m]
    W[o, c, i, j]   = sum_m k2[o, m] W01[m, c, i, j]  +  [i = j = 1][o = c]
    b[o]            = sum_m k2[o, m] b01[m] + b2[o]
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["fold_expand_fea_reduce", "reparameterize"]


@torch.no_grad()
def fold_expand_fea_reduce(expand: nn.Conv2d, fea: nn.Conv2d, reduce: nn.Conv2d,
                           identity: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (C, C, 3, 3) and bias (C,) of the single 3x3 conv equal to the block above.

    ``identity=False`` leaves out the outer ``+ x`` (the inner identity is always there).
    """
    k0 = expand.weight.detach().double()[:, :, 0, 0]      # (M, C)
    b0 = expand.bias.detach().double()                     # (M,)
    k1 = fea.weight.detach().double()                      # (M, M, 3, 3)
    b1 = fea.bias.detach().double()                        # (M,)
    k2 = reduce.weight.detach().double()[:, :, 0, 0]      # (C, M)
    b2 = reduce.bias.detach().double()                     # (C,)
    mid, n_in = k0.shape
    n_out = k2.shape[0]
    if k1.shape != (mid, mid, 3, 3) or k2.shape[1] != mid:
        raise ValueError(f"cannot fold convs of shapes {tuple(expand.weight.shape)}, "
                         f"{tuple(fea.weight.shape)}, {tuple(reduce.weight.shape)}")

    w01 = torch.einsum("mkij,kc->mcij", k1, k0)
    w01[:, :, 1, 1] += k0
    b01 = b1 + torch.einsum("mkij,k->m", k1, b0) + b0

    w = torch.einsum("om,mcij->ocij", k2, w01)
    b = k2 @ b01 + b2
    if identity:
        if n_in != n_out:
            raise ValueError(f"outer identity needs equal in/out channels, got {n_in} -> {n_out}")
        w[:, :, 1, 1] += torch.eye(n_out, dtype=w.dtype, device=w.device)
    dtype = reduce.weight.dtype
    return w.to(dtype), b.to(dtype)


def reparameterize(model: nn.Module) -> nn.Module:
    """Replace, in place, every submodule that has a ``reparameterized()`` method by the
    module it returns (its single-conv inference form).  Returns ``model`` (or the
    replacement, when ``model`` itself is such a block).  Idempotent."""
    if hasattr(model, "reparameterized"):
        return model.reparameterized()
    for name, child in list(model.named_children()):
        if hasattr(child, "reparameterized"):
            setattr(model, name, child.reparameterized())
        else:
            reparameterize(child)
    return model
