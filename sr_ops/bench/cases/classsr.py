"""ClassSR-FSRCNN x4 on one LR image with smooth and textured halves (see
sr_ops.bench.classsr_report): `sr_ops` = each sub-image through the branch its class picks,
`pytorch` = every sub-image through the largest branch (the single-network baseline), so the
"speedup" column is the time ClassSR's dispatch saves.  Full: 384x384 LR; quick: 128x128."""
from __future__ import annotations

import functools

import torch

from sr_ops.bench.cases import Case


def _make(size: int, device):
    from sr_ops.bench.classsr_report import build_model, test_image

    model, official = build_model()
    model = model.to(device)
    x = test_image(size).to(device)
    with torch.inference_mode():
        _, ids = model.classify(x)
    return {"model": model, "x": x, "hard": torch.full_like(ids, 2), "official": official}


def _classsr(d):
    with torch.inference_mode():
        return d["model"](d["x"])


def _all_hard(d):
    with torch.inference_mode():
        return d["model"](d["x"], d["hard"])


def cases() -> list[Case]:
    return [
        Case(op="classsr", label=f"FSRCNN x4 LR {n}x{n}", quick=quick, make=functools.partial(_make, n),
             impls={"sr_ops": _classsr, "pytorch": _all_hard})
        for n, quick in [(128, True), (384, False)]
    ]
