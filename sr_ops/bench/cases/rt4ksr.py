"""RT4KSR x2 (re-parameterised) on one LR frame: LayerNorm2d through sr_ops.layernorm2d and
the 3x3 convolutions through sr_ops.conv3x3 (`sr_ops`) vs plain PyTorch (`pytorch`), and
torch.compile of each (--compile). Full: a 1280x720 frame; quick: 320x180."""
from __future__ import annotations

import functools

import torch

from sr_ops.bench.cases import Case


def _make(W, H, device):
    from sr_ops import models

    g = torch.Generator().manual_seed(0)
    return {"model": models.build("rt4ksr", 2).to(device), "x": torch.rand(1, 3, H, W, generator=g).to(device)}


def _run(fused: bool, d, compiled: bool = False):
    from sr_ops.models import blocks

    model = d["model"]
    if compiled:  # one compiled wrapper per way; the flag is read (and guarded) while tracing
        model = d.setdefault("compiled", {}).setdefault(fused, torch.compile(model, dynamic=False))
    saved = blocks.USE_FUSED_LAYERNORM, blocks.USE_FUSED_CONV3X3
    blocks.USE_FUSED_LAYERNORM = blocks.USE_FUSED_CONV3X3 = fused
    try:
        with torch.no_grad():
            return model(d["x"])
    finally:
        blocks.USE_FUSED_LAYERNORM, blocks.USE_FUSED_CONV3X3 = saved


def cases() -> list[Case]:
    return [
        Case(op="rt4ksr", label=f"x2 frame {W}x{H}", quick=quick, make=functools.partial(_make, W, H),
             impls={"sr_ops": functools.partial(_run, True), "pytorch": functools.partial(_run, False)},
             compile_impl=functools.partial(_run, False, compiled=True),
             compile_fused_impl=functools.partial(_run, True, compiled=True))
        for W, H, quick in [(320, 180, True), (1280, 720, False)]
    ]
