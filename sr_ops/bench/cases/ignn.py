"""IGNN ×2, one forward of the whole model: the graph ops fused (`sr_ops`: the default
backend) vs the same model with every sr_ops op on the pure-PyTorch reference (`pytorch`).
The EDSR convolutions are the same torch code in both; the difference is the graph path
(cross_scale_knn, patch2img, graph_aggregate). Full: the official config (256 features,
32 blocks) at LR 128x128, not in `--quick` (about a minute per forward on 2 CPU threads)."""
from __future__ import annotations

import functools

import torch

import sr_ops
from sr_ops.bench.cases import Case


def _make(size, options, device):
    from sr_ops import models

    torch.manual_seed(0)  # the model's random weights
    g = torch.Generator().manual_seed(0)
    return {"model": models.build("ignn", 2, **options).to(device),
            "x": torch.rand(1, 3, size, size, generator=g).to(device)}


def _run(backend, d):
    with torch.no_grad():
        if backend is None:
            return d["model"](d["x"])
        with sr_ops.use_backend(backend):
            return d["model"](d["x"])


def case(size: int, quick: bool = False, **options) -> Case:
    """One IGNN ×2 case at LR size x size; ``options`` go to the model (e.g. n_feats)."""
    what = ", ".join(f"{k}={v}" for k, v in options.items()) or "official config"
    return Case(op="ignn", label=f"x2 LR {size}x{size} ({what})", quick=quick,
                make=functools.partial(_make, size, options),
                impls={"sr_ops": functools.partial(_run, None),
                       "pytorch": functools.partial(_run, "reference")})


def cases() -> list[Case]:
    return [case(128)]
