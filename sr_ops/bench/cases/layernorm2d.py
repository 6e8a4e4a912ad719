"""layernorm2d at NAFNet's size: a 1x64x256x256 feature map, forward and forward+backward,
against the pure-PyTorch per-pixel statistics (sr_ops.reference); and gelu_layernorm2d at
RT4KSR's (a channels-last 1x24x360x640 map: a 1280x720 frame unshuffled) against F.gelu then
the reference norm."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

import sr_ops
from sr_ops import reference
from sr_ops.bench.cases import Case

SHAPE = (1, 64, 256, 256)


def _make(device, grad=False, shape=SHAPE):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g) * 2 + 1
    w = torch.rand(shape[1], generator=g) + 0.5
    b = torch.randn(shape[1], generator=g) * 0.1
    return {"x": x.to(device).requires_grad_(grad), "weight": w.to(device).requires_grad_(grad),
            "bias": b.to(device).requires_grad_(grad),
            "grad_out": torch.randn(shape, generator=g).to(device) if grad else None}


def _fwd(fn, d):
    with torch.no_grad():
        return fn(d["x"], d["weight"], d["bias"])


def _fwd_bwd(fn, d):
    out = fn(d["x"], d["weight"], d["bias"])
    return torch.autograd.grad(out, (d["x"], d["weight"], d["bias"]), d["grad_out"])


@functools.lru_cache(maxsize=None)
def _compiled():
    return torch.compile(reference.layernorm2d, dynamic=False)


RT4KSR_SHAPE = (1, 24, 360, 640)


def _make_rt4ksr(device):
    d = _make(device, shape=RT4KSR_SHAPE)
    d["x"] = d["x"].contiguous(memory_format=torch.channels_last)
    return d


def _gelu_then_norm(x, w, b):
    return reference.layernorm2d(F.gelu(x), w, b)


@functools.lru_cache(maxsize=None)
def _compiled_gelu():
    return torch.compile(_gelu_then_norm, dynamic=False)


def cases() -> list[Case]:
    size = "x".join(map(str, SHAPE))
    return [
        Case(op="layernorm2d", label=f"NAFNet {size}", make=_make,
             impls={"sr_ops": functools.partial(_fwd, sr_ops.layernorm2d),
                    "pytorch": functools.partial(_fwd, reference.layernorm2d)},
             compile_impl=lambda d: _fwd(_compiled(), d)),
        Case(op="layernorm2d", label=f"fwd+bwd NAFNet {size}", make=functools.partial(_make, grad=True),
             impls={"sr_ops": functools.partial(_fwd_bwd, sr_ops.layernorm2d),
                    "pytorch": functools.partial(_fwd_bwd, reference.layernorm2d)}),
        Case(op="gelu_layernorm2d", label="RT4KSR " + "x".join(map(str, RT4KSR_SHAPE)) + " channels-last",
             make=_make_rt4ksr,
             impls={"sr_ops": functools.partial(_fwd, sr_ops.gelu_layernorm2d),
                    "pytorch": functools.partial(_fwd, _gelu_then_norm)},
             compile_impl=lambda d: _fwd(_compiled_gelu(), d)),
    ]
