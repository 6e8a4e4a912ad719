"""What `make gpu-check` benchmarks, built from the bench cases of sr_ops.bench.cases (their
input makers and their fused / pure-PyTorch calls), at their full sizes on a GPU or at tiny
sizes for the dry run.

An Item names, per op, the fused call (run under `sr_ops.use_backend(b)` for each fused
backend), the pure-PyTorch call (the op's `sr_ops.reference` function, or the case's own
baseline where it has one), and the function whose `torch.compile` is the third
contender (None where compiling makes no sense: autograd.grad inside, Python loops over
patches). Inputs are made in float32 and cast to each dtype of the run.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

import sr_ops
from sr_ops import reference


@dataclass
class Item:
    op: str
    label: str
    make: Callable[[torch.device], dict]
    fused: Callable[[dict], Any]
    pytorch: Callable[[dict], Any]
    # (compiled function) -> call on the inputs; compile_target is what gets compiled
    compile_call: Callable[[Callable, dict], Any] | None = None
    compile_target: Callable | None = None
    flops: float | None = None
    dtypes: tuple[str, ...] | None = None  # None: the run's dtypes

    @property
    def key(self) -> str:
        return f"{self.op}|{self.label}"


def cast(d: dict, dtype: torch.dtype) -> dict:
    """The inputs with every floating tensor (and module) in `dtype`, leaves kept leaves."""
    out = {}
    for k, v in d.items():
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            v = v.detach().to(dtype).requires_grad_(v.requires_grad)
        elif isinstance(v, torch.nn.Module):
            v = v.to(dtype)
        elif isinstance(v, list):
            v = [t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in v]
        out[k] = v
    return out


def _op_items(op, label, make, run, public, ref, compile_ok=True, flops=None, dtypes=None):
    return Item(op, label, make, functools.partial(run, public), functools.partial(run, ref),
                compile_call=run if compile_ok else None, compile_target=ref if compile_ok else None,
                flops=flops, dtypes=dtypes)


def _dw_make(c, hw, device):
    """nafblock._make_op's inputs with c gated channels (it has c = 64)."""
    from sr_ops.bench.cases import nafblock

    if c == nafblock.C:
        return nafblock._make_op(hw, device)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2 * c, hw, hw, generator=g)
    ws = [torch.randn(2 * c, 1, 3, 3, generator=g) / 3, torch.randn(2 * c, generator=g),
          torch.randn(c, c, 1, 1, generator=g) / 8, torch.randn(c, generator=g)]
    return {"args": [t.to(device) for t in (x, *ws)]}


def _vertex_make(m, n, device):
    g = torch.Generator().manual_seed(0)
    Hk = 2 * (n - 1) + 3  # n key patches per axis at p=3, t=2
    return {"idx": torch.randint(0, n * n, (1, m, 5), generator=g).to(device), "key_hw": (Hk, Hk)}


def _vertex_run(fn, d):
    return fn(d["idx"], d["key_hw"], 2, 3, 2)


def op_items(dry: bool) -> list[Item]:
    from sr_ops.bench.cases import adapn, eca, nafblock
    from sr_ops.bench.cases import cross_scale_knn as knn
    from sr_ops.bench.cases import graph_aggregate as ga
    from sr_ops.bench.cases import layernorm2d as ln
    from sr_ops.bench.cases import patch2img as p2i
    from sr_ops.bench.cases import patch_dispatch as pd

    hr = (1, 4, 22, 22, 6, 4) if dry else (5, 64, 254, 254, 6, 4)
    knn_c, knn_h = (4, 16) if dry else (64, 384)
    m_adapn = 4 if dry else 3969
    ga_c, ga_h, ga_hb = (2, 10, 10) if dry else (64, 160, 96)
    shape = (1, 4, 8, 8) if dry else (1, 64, 256, 256)
    rt_shape = (1, 4, 8, 8) if dry else (1, 24, 720, 1280)  # RT4KSR's unshuffled map of a 2560x1440 frame
    dw = (8, 8) if dry else (nafblock.C, 256)  # (gated channels C', H = W)
    ffn = (8, 8) if dry else (nafblock.C, 256)  # (C = F, H = W)
    vm = (64, 8) if dry else (63 * 63, 31)
    img, pp, pt = (24, 8, 8) if dry else (1024, 32, 28)
    size = "x".join(map(str, shape))
    items = [
        _op_items("patch2img", f"IGNN HR fold {hr[0]}x{hr[1]}x{hr[2]}x{hr[3]} p{hr[4]} t{hr[5]}",
                  functools.partial(p2i._make, *hr), p2i._fwd, sr_ops.patch2img, reference.patch2img),
        _op_items("patch2img", "fwd+bwd IGNN HR fold", functools.partial(p2i._make, *hr, grad=True),
                  p2i._fwd_bwd, sr_ops.patch2img, reference.patch2img, compile_ok=False),
        Item("cross_scale_knn", f"q 1x{knn_c}x{knn_h}x{knn_h} k5 w30 s2", functools.partial(knn._make, knn_c, knn_h),
             knn._fused, knn._pytorch, compile_call=lambda fn, d: _knn_call(fn, d),
             compile_target=knn.pytorch_knn, flops=knn.windowed_flops(knn_c, knn_h)),
        _op_items("adapn", f"IGNN {m_adapn}x5x64 P6 p3",
                  functools.partial(adapn._make, m_adapn), adapn._fwd, sr_ops.adapn, reference.adapn),
        _op_items("adapn", "fwd+bwd IGNN", functools.partial(adapn._make, m_adapn, grad=True),
                  adapn._fwd_bwd, sr_ops.adapn, reference.adapn, compile_ok=False),
        _op_items("graph_aggregate", f"feat 1x{ga_c}x{ga_h}x{ga_h} s2 k5 weighted",
                  functools.partial(ga.make_inputs, ga_c, ga_h), ga._fwd, sr_ops.graph_aggregate, ga.reference),
        _op_items("graph_aggregate", f"fwd+bwd feat 1x{ga_c}x{ga_hb}x{ga_hb}",
                  functools.partial(ga.make_inputs, ga_c, ga_hb, grad=True), ga._fwd_bwd,
                  sr_ops.graph_aggregate, ga.reference, compile_ok=False),
        _op_items("layernorm2d", f"NAFNet {size}", functools.partial(ln._make, shape=shape), ln._fwd,
                  sr_ops.layernorm2d, reference.layernorm2d),
        _op_items("layernorm2d", f"fwd+bwd NAFNet {size}", functools.partial(ln._make, grad=True, shape=shape),
                  ln._fwd_bwd, sr_ops.layernorm2d, reference.layernorm2d, compile_ok=False),
        _op_items("gelu_layernorm2d", f"RT4KSR {'x'.join(map(str, rt_shape))}",
                  functools.partial(ln._make, shape=rt_shape), ln._fwd, sr_ops.gelu_layernorm2d, ln._gelu_then_norm),
        _op_items("eca", f"RT4KSR {size} k3", functools.partial(eca._make, shape=shape), eca._fwd,
                  sr_ops.eca, reference.eca),
        _op_items("eca", f"fwd+bwd RT4KSR {size} k3", functools.partial(eca._make, grad=True, shape=shape),
                  eca._fwd_bwd, sr_ops.eca, reference.eca, compile_ok=False),
        _op_items("dwconv_gate_ca", f"dw3x3+gate+sca 1x{2 * dw[0]}x{dw[1]}x{dw[1]}",
                  functools.partial(_dw_make, *dw), nafblock._run_op, sr_ops.dwconv_gate_ca,
                  reference.dwconv_gate_ca),
        _op_items("naf_ffn", f"FFN half 1x{ffn[0]}x{ffn[1]}x{ffn[1]}",
                  functools.partial(nafblock._make_ffn, ffn[1], c=ffn[0]), nafblock._run_ffn, sr_ops.naf_ffn,
                  reference.naf_ffn),
        _op_items("vertex_map", f"idx 1x{vm[0]}x5 key grid {vm[1]}x{vm[1]}", functools.partial(_vertex_make, *vm),
                  _vertex_run, sr_ops.vertex_map, reference.vertex_map, dtypes=("int64",)),
    ]
    for name, scale, ready in [("identity x1", 1, False), ("ready x4 outputs", 4, True)]:
        items.append(Item("patch_dispatch", f"ClassSR 1x3x{img}x{img} p{pp} t{pt} {name}",
                          functools.partial(pd._make, img, img, pp, pt, scale, ready=ready), pd._fused, pd._official))
    return items


def _knn_call(fn, d):
    with torch.no_grad():
        return fn(d["query"], d["key"])[0]


# --- models -----------------------------------------------------------------------------

@dataclass
class ModelItem:
    op: str
    label: str
    make: Callable[[torch.device], dict]
    run: Callable[[dict], Any]  # run(d) with d["fused"] telling fused or not
    dtypes: tuple[str, ...]
    backends: tuple[str, ...] | None = None  # fused backends to try (None: the run's)
    graph: bool = False  # try a CUDA-graph capture
    pixels: int = 0  # output pixels per call
    dry_skip: dict = field(default_factory=dict)  # backend -> why the dry run leaves it out

    @property
    def key(self) -> str:
        return f"{self.op}|{self.label}"


def _rt4ksr_run(d):
    from sr_ops.bench.cases import rt4ksr

    return rt4ksr._run(d["fused"], d)


def _ignn_run(d):
    with torch.no_grad():
        if d["fused"]:
            return d["model"](d["x"])
        with sr_ops.use_backend("reference"):
            return d["model"](d["x"])


def model_items(dry: bool) -> list[ModelItem]:
    from sr_ops.bench.cases import ignn, rt4ksr

    w, h = (32, 18) if dry else (1920, 1080)
    lr = 12 if dry else 512
    opts = {"n_resblocks": 2, "n_feats": 8} if dry else {}
    what = ", ".join(f"{k}={v}" for k, v in opts.items()) or "official config"
    return [
        ModelItem("rt4ksr", f"x2 frame {w}x{h} -> {2 * w}x{2 * h}", functools.partial(rt4ksr._make, w, h),
                  _rt4ksr_run, ("float16", "float32"), graph=True, pixels=4 * w * h),
        ModelItem("ignn", f"x2 LR {lr}x{lr} ({what})", functools.partial(ignn._make, lr, opts), _ignn_run,
                  ("float32",), pixels=4 * lr * lr,
                  dry_skip={"triton": "dry run: one IGNN forward in Triton's interpreter takes ~40 s"}),
    ]
