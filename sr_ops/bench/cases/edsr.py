"""EDSR-baseline x2 forward on one LR image (speed only).

EDSR has no fused sr_ops operator (it is plain 3x3 convs, ReLUs and PixelShuffle), so the
case has no `sr_ops` row: `pytorch` is the eager model as `sr_ops.models.build` returns it,
and with `--compile` a `torch.compile` of that model is the one comparison.  Full: 256x256 LR;
quick: 64x64.  FLOPs count each conv's multiply-adds twice (mean shifts and PixelShuffle left
out).
"""
from __future__ import annotations

import functools

import torch

from sr_ops.bench.cases import Case

SCALE = 2


def _model(device):
    from sr_ops import models

    # random weights (no EDSR checkpoint is shipped; speed does not care), reproducible
    # without touching the caller's RNG state
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return models.build("edsr_baseline", SCALE).to(device)


def _make(size: int, device):
    g = torch.Generator().manual_seed(0)
    return {"model": _model(device), "x": torch.rand(1, 3, size, size, generator=g).to(device)}


def _fwd(d):
    with torch.no_grad():
        return d["model"](d["x"])


@functools.lru_cache(maxsize=None)
def _compiled(model):
    return torch.compile(model, dynamic=False)


def _fwd_compiled(d):
    with torch.no_grad():
        return _compiled(d["model"])(d["x"])


def _flops(size: int, n_resblocks: int = 16, c: int = 64) -> float:
    per_lr_pixel = 9 * (3 * c + (2 * n_resblocks + 1) * c * c + c * 4 * c)  # head, body, upsampler
    per_hr_pixel = 9 * c * 3  # tail.1 runs on the upscaled grid
    return 2.0 * size * size * (per_lr_pixel + SCALE * SCALE * per_hr_pixel)


def cases() -> list[Case]:
    return [
        Case(op="edsr", label=f"EDSR-baseline x2 LR {n}x{n}", quick=quick,
             make=functools.partial(_make, n), impls={"pytorch": _fwd},
             compile_impl=_fwd_compiled, extra={"flops": _flops(n)})
        for n, quick in [(64, True), (256, False)]
    ]
