"""to_channels_last on the maps the CPU models convert: NAFBlock's 1x64x256x256 feature map
on entry to a block, and RT4KSR's 1x3x720x1280 input frame, against torch's
``contiguous(memory_format=torch.channels_last)`` (and torch.compile of it, which lowers the
copy to its own loop)."""
from __future__ import annotations

import functools

import torch

import sr_ops
from sr_ops import reference
from sr_ops.bench.cases import Case


def _make(shape, device):
    g = torch.Generator().manual_seed(0)
    return {"x": torch.randn(shape, generator=g).to(device)}


def _run(fn, d):
    return fn(d["x"])


@functools.lru_cache(maxsize=None)
def _compiled():
    return torch.compile(reference.to_channels_last, dynamic=False)


def cases() -> list[Case]:
    out = []
    for shape, what, quick in [((1, 64, 256, 256), "NAFBlock map", True), ((1, 3, 720, 1280), "RT4KSR frame", False)]:
        out.append(Case(op="to_channels_last", label=f"{what} {'x'.join(map(str, shape))}", quick=quick,
                        make=functools.partial(_make, shape),
                        impls={"sr_ops": functools.partial(_run, sr_ops.to_channels_last),
                               "pytorch": functools.partial(_run, reference.to_channels_last)},
                        compile_impl=lambda d: _run(_compiled(), d),
                        extra={"tol": dict(rtol=0, atol=0)}))  # a copy: bit for bit
    return out
