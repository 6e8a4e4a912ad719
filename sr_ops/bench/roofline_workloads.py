"""The op calls the models make at the sizes they run, for docs/gpu-roofline.md.

RT4KSR x2 (1920x1080 -> 3840x2160), NAFNet-SR x2 width 64 (512x512 LR) and IGNN x2 (320x180
LR) run on the meta device under a dispatch mode that records every sr_ops op and every aten
op they call (shapes only: nothing is computed). ClassSR's dispatch depends on its
classifier's output, so its calls are built directly: a 1920x1080 LR image cut into 32x32
patches at stride 28, the patches split evenly over the three classes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode

MODELS = {
    # name: (model, scale, LR input shape, build options)
    "RT4KSR x2": ("rt4ksr", 2, (1, 3, 1080, 1920), {}),
    "NAFNet-SR x2": ("nafnet_sr", 2, (1, 3, 512, 512), {"width": 64}),
    "IGNN x2": ("ignn", 2, (1, 3, 180, 320), {}),
}
CLASSSR = ("ClassSR x4", (1, 3, 1080, 1920), 32, 28, 4)


@dataclass
class Call:
    """One op call: `op` is 'sr_ops.<name>' or an aten overload name; args as called."""
    model: str
    op: str
    args: tuple
    count: int = 1
    outputs: tuple = field(default_factory=tuple)


def _nbytes(x) -> int:
    if isinstance(x, torch.Tensor):
        return x.numel() * x.element_size()
    if isinstance(x, (list, tuple)):
        return sum(_nbytes(a) for a in x)
    return 0


def tensor_bytes(*xs) -> int:
    return sum(_nbytes(x) for x in xs)


class Recorder(TorchDispatchMode):
    """Records the ops that move data: sr_ops ops, and aten ops that are not views or
    allocations (a view has no traffic; torch.empty writes nothing)."""

    _SKIP = ("aten.empty", "aten.new_empty", "aten.detach", "aten.lift_fresh", "aten.sym_", "aten.alias")

    def __init__(self, model: str, sr_only: bool = False):
        super().__init__()
        self.model, self.sr_only, self.calls = model, sr_only, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = str(func)
        if name.startswith("sr_ops") or not (self.sr_only or self._no_traffic(func, name)):
            self.calls.append(Call(self.model, name, tuple(args), outputs=out if isinstance(out, tuple) else (out,)))
        return out

    def _no_traffic(self, func, name: str) -> bool:
        return name.startswith(self._SKIP) or any(r.alias_info is not None for r in func._schema.returns)


def _merge(calls: list[Call]) -> list[Call]:
    """Identical calls (op and argument shapes) counted once with a multiplicity."""
    def sig(c):
        return (c.op, tuple((tuple(a.shape), a.dtype) if isinstance(a, torch.Tensor) else repr(a) for a in c.args))
    out: dict = {}
    for c in calls:
        if sig(c) in out:
            out[sig(c)].count += 1
        else:
            out[sig(c)] = c
    return list(out.values())


def model_calls(name: str, dtype: torch.dtype = torch.float32, sr_only: bool = False, device="meta",
                shrink: int = 1) -> list[Call]:
    """The calls of one model's forward; on a real device (make gpu-check) with random
    weights and input, the LR input's sides divided by `shrink` (its dry run on the CPU)."""
    from sr_ops import models

    model, scale, shape, options = MODELS[name]
    shape = (*shape[:2], shape[2] // shrink, shape[3] // shrink)
    with torch.device(device):
        net = models.build(model, scale, **options).eval().to(dtype)
        x = torch.empty(shape, dtype=dtype) if device == "meta" else torch.rand(shape, dtype=dtype)
    rec = Recorder(name, sr_only)
    with torch.no_grad(), rec:
        net(x)
    return _merge(rec.calls)


def classsr_calls(dtype: torch.dtype = torch.float32, device="cpu", shrink: int = 1) -> list[Call]:
    """extract_patches (corners), class_dispatch, gather_patches, merge_patches at ClassSR x4
    on a 1920x1080 LR image; CPU tensors (the dispatch checks index values), never filled
    unless on a real device (make gpu-check)."""
    import sr_ops

    name, shape, P, stride, s = CLASSSR
    shape = (*shape[:2], shape[2] // shrink, shape[3] // shrink)
    with torch.device(device):
        img = torch.empty(shape, dtype=dtype) if device == "cpu" and shrink == 1 else torch.rand(shape, dtype=dtype)
        _, coords = sr_ops.extract_patches(img[:, :1], P, stride)
        n = coords.shape[0]
        ids = torch.arange(n) % 3
        order, _ = sr_ops.class_dispatch(ids, 3)
        outputs = torch.empty(n, shape[1], s * P, s * P, dtype=dtype)
    return [Call(name, "sr_ops.extract_patches.default", (img[:, :1], P, stride)),
            Call(name, "sr_ops.class_dispatch.default", (ids, 3)),
            Call(name, "sr_ops.gather_patches.default", (img, coords, order, P)),
            Call(name, "sr_ops.merge_patches.default", (outputs, coords, order, (1, shape[2], shape[3]), s))]


def all_sr_calls(dtype: torch.dtype = torch.float32, device="meta", shrink: int = 1) -> list[Call]:
    """Every sr_ops op call of the four workloads."""
    calls = [c for m in MODELS for c in model_calls(m, dtype, True, device, shrink) if c.op.startswith("sr_ops.")]
    return calls + classsr_calls(dtype, "cpu" if device == "meta" else device, shrink)
