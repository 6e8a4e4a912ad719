"""adapn at IGNN's size: the k=5 neighbours of every query patch of a 128x128 LR map
(63x63 = 3969 queries, p=3, stride 2), 64 channels, 6x6 neighbour patches (x2) against
3x3 queries; and a quarter of the queries (quick)."""
from __future__ import annotations

import functools

import torch

import sr_ops
from sr_ops import reference
from sr_ops.bench.cases import Case

K, C, P, p = 5, 64, 6, 3


def _make(m, device, grad=False):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, m, K, C, P, P, generator=g) * 2 + 1
    q = torch.randn(1, m, C, p, p, generator=g)
    return {"neighbors": z.to(device).requires_grad_(grad), "query": q.to(device).requires_grad_(grad),
            "grad_out": torch.randn(z.shape, generator=g).to(device) if grad else None}


def _fwd(fn, d):
    with torch.no_grad():
        return fn(d["neighbors"], d["query"])


def _fwd_bwd(fn, d):
    out = fn(d["neighbors"], d["query"])
    return torch.autograd.grad(out, (d["neighbors"], d["query"]), d["grad_out"])


@functools.lru_cache(maxsize=None)
def _compiled():
    return torch.compile(reference.adapn, dynamic=False)


def cases() -> list[Case]:
    out = []
    for m, quick in [(3969, False), (992, True)]:
        size = f"{m}x{K}x{C} P{P} p{p}"
        out.append(Case(
            op="adapn", label=f"IGNN {size}", quick=quick,
            make=functools.partial(_make, m),
            impls={"sr_ops": functools.partial(_fwd, sr_ops.adapn),
                   "pytorch": functools.partial(_fwd, reference.adapn)},
            compile_impl=lambda d: _fwd(_compiled(), d),
        ))
        out.append(Case(
            op="adapn", label=f"fwd+bwd IGNN {size}", quick=quick,
            make=functools.partial(_make, m, grad=True),
            impls={"sr_ops": functools.partial(_fwd_bwd, sr_ops.adapn),
                   "pytorch": functools.partial(_fwd_bwd, reference.adapn)},
        ))
    return out
