"""Benchmark cases, one module per op. Each case builds realistic inputs once and names
the implementations to compare: `sr_ops` (the fused op on its default backend),
`pytorch` (the pure-PyTorch way, sr_ops.reference) and, with --compile, `torch.compile`
(of the PyTorch way) and `compile(sr_ops)` (of the sr_ops way, where the custom ops are
graph nodes inductor fuses around)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

Inputs = dict[str, Any]


@dataclass
class Case:
    op: str
    label: str
    make: Callable[[torch.device], Inputs]
    impls: dict[str, Callable[[Inputs], Any]]
    quick: bool = True  # part of `bench --quick`
    compile_impl: Callable[[Inputs], Any] | None = None  # torch.compile of the pytorch way
    compile_fused_impl: Callable[[Inputs], Any] | None = None  # torch.compile of the sr_ops way
    extra: dict = field(default_factory=dict)


def all_cases() -> list[Case]:
    from sr_ops.bench.cases import (
        adapn,
        classsr,
        conv3x3,
        cross_scale_knn,
        eca,
        edsr,
        graph_aggregate,
        ignn,
        layernorm2d,
        nafblock,
        patch2img,
        patch_dispatch,
        rt4ksr,
        to_channels_last,
    )

    return [*patch2img.cases(), *cross_scale_knn.cases(), *adapn.cases(), *graph_aggregate.cases(),
            *layernorm2d.cases(), *eca.cases(), *nafblock.cases(), *rt4ksr.cases(),
            *edsr.cases(),
            *ignn.cases(),
            *classsr.cases(),
            *patch_dispatch.cases(),
            *to_channels_last.cases(),
            *conv3x3.cases()]
