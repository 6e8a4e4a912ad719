"""graph_aggregate at IGNN x2 sizes: feat 1x64x160x160 (quick: 1x64x96x96), key map half
the size, k=5, p=3, t=2, with per-pixel weights. The PyTorch baseline is the reference
composition: unfold the regions, index them, AdaPN, F.fold, divide by the count, weight."""
from __future__ import annotations

import functools

import torch

import sr_ops
from sr_ops.bench.cases import Case
from sr_ops.reference.graph_aggregate import graph_aggregate as reference

K, P, T, S = 5, 3, 2, 2


def make_inputs(C, H, device, grad=False):
    g = torch.Generator().manual_seed(0)
    Hk = H // S
    n = ((Hk - P) // T + 1) ** 2
    m = ((H - P) // T + 1) ** 2
    return {
        "feat": torch.randn(1, C, H, H, generator=g).to(device).requires_grad_(grad),
        "query_feat": torch.randn(1, C, H, H, generator=g).to(device).requires_grad_(grad),
        "idx": torch.randint(0, n, (1, m, K), generator=g).to(device),
        "key_hw": (Hk, Hk),
        "weights": torch.rand(1, K, S * H, S * H, generator=g).to(device).requires_grad_(grad),
    }


def _call(fn, d):
    return fn(d["feat"], d["idx"], d["query_feat"], d["key_hw"], S, P, T, d["weights"])


def _fwd(fn, d):
    with torch.no_grad():
        return _call(fn, d)


def _fwd_bwd(fn, d):
    out = _call(fn, d)
    return torch.autograd.grad(out, (d["feat"], d["query_feat"], d["weights"]), torch.ones_like(out))[0]


def cases() -> list[Case]:
    out = []
    for H, quick in [(96, True), (160, False)]:
        out.append(Case(op="graph_aggregate", label=f"feat 1x64x{H}x{H} s2 k5 weighted", quick=quick,
                        make=functools.partial(make_inputs, 64, H),
                        impls={"sr_ops": functools.partial(_fwd, sr_ops.graph_aggregate),
                               "pytorch": functools.partial(_fwd, reference)}))
    out.append(Case(op="graph_aggregate", label="fwd+bwd feat 1x64x96x96", quick=False,
                    make=functools.partial(make_inputs, 64, 96, grad=True),
                    impls={"sr_ops": functools.partial(_fwd_bwd, sr_ops.graph_aggregate),
                           "pytorch": functools.partial(_fwd_bwd, reference)}))
    return out
