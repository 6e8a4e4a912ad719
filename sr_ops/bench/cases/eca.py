"""eca at RT4KSR's size: a 1x64x256x256 feature map and a 3-tap channel convolution,
forward and forward+backward, against pool -> conv1d -> sigmoid -> multiply in PyTorch."""
from __future__ import annotations

import functools

import torch

import sr_ops
from sr_ops import reference
from sr_ops.bench.cases import Case

SHAPE, K = (1, 64, 256, 256), 3


def _make(device, grad=False, shape=SHAPE):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g) + torch.randn(shape[0], shape[1], 1, 1, generator=g)
    w = torch.randn(1, 1, K, generator=g)
    return {"x": x.to(device).requires_grad_(grad), "weight": w.to(device).requires_grad_(grad),
            "grad_out": torch.randn(shape, generator=g).to(device) if grad else None}


def _fwd(fn, d):
    with torch.no_grad():
        return fn(d["x"], d["weight"])


def _fwd_bwd(fn, d):
    out = fn(d["x"], d["weight"])
    return torch.autograd.grad(out, (d["x"], d["weight"]), d["grad_out"])


@functools.lru_cache(maxsize=None)
def _compiled():
    return torch.compile(reference.eca, dynamic=False)


@functools.lru_cache(maxsize=None)
def _compiled_fused():
    return torch.compile(sr_ops.eca, dynamic=False)


def cases() -> list[Case]:
    size = "x".join(map(str, SHAPE))
    return [
        Case(op="eca", label=f"RT4KSR {size} k{K}", make=_make,
             impls={"sr_ops": functools.partial(_fwd, sr_ops.eca),
                    "pytorch": functools.partial(_fwd, reference.eca)},
             compile_impl=lambda d: _fwd(_compiled(), d), compile_fused_impl=lambda d: _fwd(_compiled_fused(), d)),
        Case(op="eca", label=f"fwd+bwd RT4KSR {size} k{K}", make=functools.partial(_make, grad=True),
             impls={"sr_ops": functools.partial(_fwd_bwd, sr_ops.eca),
                    "pytorch": functools.partial(_fwd_bwd, reference.eca)}),
    ]
