"""patch2img at IGNN's sizes: the HR fold of k=5 neighbours (6x6 patches, stride 4, at
LR 128x128 with 64 channels) and a dense 3x3 stride-1 fold at LR size."""
from __future__ import annotations

import functools

import torch

import sr_ops
from sr_ops import reference
from sr_ops.bench.cases import Case


def _make(B, C, H, W, P, T, device, grad=False):
    L = ((H - P) // T + 1) * ((W - P) // T + 1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, L, C, P, P, generator=g).to(device)
    return {"patches": x.requires_grad_(grad), "out_size": (H, W), "P": P, "T": T,
            "grad_out": torch.randn(B, C, H, W, generator=g).to(device) if grad else None}


def _fwd(fn, d):
    with torch.no_grad():
        return fn(d["patches"], d["out_size"], d["P"], d["T"])


def _fwd_bwd(fn, d):
    out = fn(d["patches"], d["out_size"], d["P"], d["T"])
    return torch.autograd.grad(out, d["patches"], d["grad_out"])[0]


@functools.lru_cache(maxsize=None)
def _compiled():
    return torch.compile(reference.patch2img, dynamic=False)


def cases() -> list[Case]:
    hr = (5, 64, 254, 254, 6, 4)  # k=5 neighbours, IGNN x2 at LR 128x128
    dense = (1, 64, 128, 128, 3, 1)
    out = []
    for label, shape, quick in [("IGNN HR fold 5x64x254x254 p6 t4", hr, True),
                                ("dense fold 64x128x128 p3 t1", dense, False)]:
        out.append(Case(
            op="patch2img", label=label, quick=quick,
            make=functools.partial(_make, *shape),
            impls={"sr_ops": functools.partial(_fwd, sr_ops.patch2img),
                   "pytorch": functools.partial(_fwd, reference.patch2img)},
            compile_impl=lambda d: _fwd(_compiled(), d),
        ))
    out.append(Case(
        op="patch2img", label="fwd+bwd IGNN HR fold", quick=True,
        make=functools.partial(_make, *hr, grad=True),
        impls={"sr_ops": functools.partial(_fwd_bwd, sr_ops.patch2img),
               "pytorch": functools.partial(_fwd_bwd, reference.patch2img)},
    ))
    return out
