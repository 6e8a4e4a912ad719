"""The Triton wrapper calls that compile_check drives: every op's forward and backward,
in every variant that changes which kernels launch or their constexprs, for every dtype
the op takes on a GPU (graph_aggregate's float16/bfloat16 in fewer variants, see _cases).

The calls go through the wrappers in sr_ops/triton/*.py, so the kernels see the very
constexprs, dtypes and argument specialisations the ops give them. Shapes are typical of
the models (IGNN's 3x3 patches at stride 2 and scale 2, NAFNet/RT4KSR widths, ClassSR's
32-pixel patches): they matter because Triton specialises integer arguments (== 1, a
multiple of 16) and some block sizes follow them. The tensors are CPU tensors: with the
launches intercepted nothing reads them. Importing this module does not import triton.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

import torch

FLOATS = ("float32", "float16", "bfloat16", "float64")


@dataclass(frozen=True)
class Case:
    op: str
    variant: str  # "fwd" / "bwd", then the options, e.g. "bwd weights adapn"
    dtype: str
    call: Callable[[torch.dtype], object]

    @property
    def id(self) -> str:
        return f"{self.op}-{self.variant.replace(' ', '-')}-{self.dtype}"


def _w(module: str):
    return importlib.import_module(f"sr_ops.triton.{module}")


def _r(*shape, dtype):
    return torch.randn(*shape).to(dtype)


def _acc(dtype):
    """The dtype the ops give per-query distances and other accumulators: the wrappers'."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _ids(n, high, *shape):
    return torch.randint(0, high, shape if shape else (n,), dtype=torch.int64)


# IGNN graph ops: LR feature 24x24, patches p=3 at stride 2 (11x11 = 121 queries), key map 12x12, k=5.
_K, _C, _H = 5, 16, 24


def _adapn(direction):
    def call(dt):
        z, q = _r(2, 121, _K, _C, 6, 6, dtype=dt), _r(2, 121, _C, 3, 3, dtype=dt)
        if direction == "fwd":
            return _w("adapn").adapn_fwd(z, q, 1e-5)
        return _w("adapn").adapn_bwd(torch.randn_like(z), z, q, 1e-5)
    return call


def _class_dispatch(logits):
    def call(dt):
        x = _r(1000, 3, dtype=dt) if logits else _ids(1000, 3)
        return _w("class_dispatch").class_dispatch_fwd(x, 3)
    return call


def _knn(direction, window=30):
    def call(dt):
        q, k = _r(1, 64, 48, 48, dtype=dt), _r(1, 64, 24, 24, dtype=dt)
        m = _w("cross_scale_knn")
        if direction == "fwd":
            return m.cross_scale_knn_fwd(q, k, _K, 3, 2, window, 2)
        g = torch.randn(1, 23 * 23, _K, dtype=_acc(dt))
        m = _w("cross_scale_knn_backward")
        return m.cross_scale_knn_bwd(g, _ids(0, 11 * 11, 1, 23 * 23, _K), q, k, 3, 2)
    return call


def _dwconv(direction, gate):
    def call(dt):
        C = 64
        Cg = C // 2 if gate else C
        args = (_r(1, C, 48, 48, dtype=dt), _r(C, 1, 3, 3, dtype=dt), _r(C, dtype=dt),
                _r(Cg, Cg, 1, 1, dtype=dt), _r(Cg, dtype=dt))
        m = _w("dwconv_gate_ca")
        if direction == "fwd":
            return m.dwconv_gate_ca_fwd(*args, gate)
        return m.dwconv_gate_ca_bwd(_r(1, Cg, 48, 48, dtype=dt), *args, gate)
    return call


def _naf_ffn(direction, C, F):
    def call(dt):
        args = (_r(1, C, 48, 48, dtype=dt), _r(C, dtype=dt), _r(C, dtype=dt), _r(2 * F, C, dtype=dt),
                _r(2 * F, dtype=dt), _r(C, F, dtype=dt), _r(C, dtype=dt), _r(C, dtype=dt))
        if direction == "fwd":
            return _w("naf_ffn").naf_ffn_fwd(*args, 1e-6)
        return _w("naf_ffn_bwd").naf_ffn_bwd(torch.randn_like(args[0]), *args, 1e-6)
    return call


def _eca(direction):
    def call(dt):
        x, w = _r(1, 64, 48, 48, dtype=dt), _r(3, dtype=dt)
        m = _w("eca")
        return m.eca_fwd(x, w) if direction == "fwd" else m.eca_bwd(torch.randn_like(x), x, w)
    return call


def _layernorm(direction, gelu=None):
    def call(dt):
        x, w, b = _r(1, 64, 48, 48, dtype=dt), _r(64, dtype=dt), _r(64, dtype=dt)
        m = _w("layernorm2d")
        if direction == "fwd":
            return m.layernorm2d_fwd(x, w, b, 1e-6, gelu=gelu)
        return m.layernorm2d_bwd(torch.randn_like(x), x, w, b, 1e-6)
    return call


def _graph_aggregate(direction, weights, adapn):
    def call(dt):
        feat, qf = _r(1, _C, _H, _H, dtype=dt), _r(1, _C, _H, _H, dtype=dt)
        idx = _ids(0, 5 * 5, 1, 121, _K)  # key map 12x12: a 5x5 grid of 3x3 patches
        w = _r(1, _K, 2 * _H, 2 * _H, dtype=dt) if weights else None
        m = _w("graph_aggregate")
        if direction == "fwd":
            return m.graph_aggregate_fwd(feat, idx, qf, (12, 12), 2, 3, 2, w, adapn, 1e-5)
        grad = _r(*((1, _C) if weights else (1, _K, _C)), 2 * _H, 2 * _H, dtype=dt)
        return m.graph_aggregate_bwd(grad, feat, idx, qf, w, (12, 12), 2, 3, 2, adapn, 1e-5)
    return call


def _patch2img(direction, scale=2, W=None):
    def call(dt):  # IGNN's HR fold at scale s: (s*3)x(s*3) patches at stride s*2 of the s*24 HR map
        P, T = 3 * scale, 2 * scale
        W_ = W or _H * scale
        m = _w("patch2img")
        if direction == "fwd":
            return m.patch2img_fwd(_r(1, 11 * ((W_ - P) // T + 1), _C, P, P, dtype=dt), (_H * scale, W_), P, T)
        return m.patch2img_bwd(_r(1, _C, _H * scale, W_, dtype=dt), P, T)
    return call


def _vertex_map(dt):
    return _w("vertex_map").vertex_map_fwd(_ids(0, 121, 1, 121, _K), (24, 24), 2, 3, 2)


# ClassSR: a 96x96 RGB LR image in 32x32 patches at stride 28 (a 3x3 grid), scale 2.
def _patches():
    coords = torch.tensor([[0, 28 * i, 28 * j] for i in range(3) for j in range(3)], dtype=torch.int64)
    return coords, torch.randperm(9)


def _extract(dt):
    return _w("extract_patches").extract_patches_fwd(_r(1, 3, 96, 96, dtype=dt), 32, 28)


def _gather(direction):
    def call(dt):
        coords, order = _patches()
        m = _w("gather_patches")
        if direction == "fwd":
            return m.gather_patches_fwd(_r(1, 3, 96, 96, dtype=dt), coords, order, 32)
        return m.gather_patches_bwd(_r(9, 3, 32, 32, dtype=dt), coords, order, (1, 3, 96, 96))
    return call


def _merge(direction, s=2):
    def call(dt):
        coords, order = _patches()
        m = _w("merge_patches")
        if direction == "fwd":
            return m.merge_patches_fwd(_r(9, 3, 32 * s, 32 * s, dtype=dt), coords, order, (1, 96, 96), s)
        return m.merge_patches_bwd(_r(1, 3, 96 * s, 96 * s, dtype=dt), coords, order, 32, s)
    return call


def _index64(module: str, call):
    """The INDEX64 variant, which the wrapper picks only past 2**31 elements (too many to
    allocate here): the same call with the wrapper's choice forced."""
    def run(dt):
        m = _w(module)
        saved, m.index64 = m.index64, lambda *sizes: True
        try:
            return call(dt)
        finally:
            m.index64 = saved
    return run


def _cases():
    table = []  # (op, variant, dtypes, call)
    for d in ("fwd", "bwd"):
        table += [("adapn", d, FLOATS, _adapn(d)), ("cross_scale_knn", d, FLOATS, _knn(d)),
                  ("eca", d, FLOATS, _eca(d)), ("layernorm2d", d, FLOATS, _layernorm(d)),
                  ("patch2img", d, FLOATS, _patch2img(d)), ("gather_patches", d, FLOATS, _gather(d)),
                  ("merge_patches", d, FLOATS, _merge(d))]
        for gate in (True, False):
            table.append(("dwconv_gate_ca", f"{d} {'gate' if gate else 'nogate'}", FLOATS, _dwconv(d, gate)))
        for weights in (True, False):
            for adapn in (True, False):
                v = f"{d} {'weights' if weights else 'noweights'} {'adapn' if adapn else 'noadapn'}"
                # The slowest compiles (the AdaPN gradient loop): half dtypes only in the variant that
                # launches every kernel, plus forward without either option. They differ from float32
                # only in the loads' conversions.
                full = (weights and adapn) or (d == "fwd" and not weights and not adapn)
                table.append(("graph_aggregate", v, FLOATS if full else ("float32", "float64"),
                              _graph_aggregate(d, weights, adapn)))
    # gelu_layernorm2d's forward: layernorm2d's kernel with its GELU prologue (RT4KSR's width 24).
    table += [("gelu_layernorm2d", "fwd erf", FLOATS, _layernorm("fwd", "none")),
              ("gelu_layernorm2d", "fwd tanh", ("float32",), _layernorm("fwd", "tanh"))]
    # window=None only changes runtime integers (half = 0 is specialised as a multiple of 16): one dtype.
    table.append(("cross_scale_knn", "fwd nowindow", ("float32",), _knn("fwd", window=-1)))
    # NAFNet's widths (F = C, ffn expansion 2): 64 is NAFNet-SR's; 32 and 128 bound the tile
    # choices. float64 multiplies on the CUDA cores (correctness only): one width.
    for d in ("fwd", "bwd"):
        table += [("naf_ffn", f"{d} c{c}", ("float32", "float16", "bfloat16") + (("float64",) if c == 32 else ()),
                   _naf_ffn(d, c, c)) for c in (32, 64, 128)]
    table += [("adapn", f"{d} index64", ("float32",), _index64("adapn", _adapn(d))) for d in ("fwd", "bwd")]
    table += [("patch2img", f"{d} index64", ("float32",), _index64("patch2img", _patch2img(d))) for d in ("fwd", "bwd")]
    table += [("vertex_map", "fwd index64", ("int64",), _index64("vertex_map", _vertex_map)),
              ("extract_patches", "fwd index64", ("float32",), _index64("extract_patches", _extract))]
    # Scale 4 (12x12 patches at stride 8): the forward's loads are as wide as 4 float32 there only.
    table += [("patch2img", f"{d} s4", ("float32", "float16"), _patch2img(d, 4)) for d in ("fwd", "bwd")]
    # A width that is a multiple of 4 but not of 16: the wrapper, not Triton, knows the map rows' alignment.
    table.append(("patch2img", "bwd w36", ("float32",), _patch2img("bwd", W=36)))
    table += [("class_dispatch", "fwd logits", FLOATS, _class_dispatch(True)),
              ("class_dispatch", "fwd ids", ("int64",), _class_dispatch(False)),
              ("vertex_map", "fwd", ("int64",), _vertex_map),
              ("extract_patches", "fwd", FLOATS, _extract)]
    # ClassSR's x4: every HR corner a multiple of 4, so the pastes' and crops' 128-bit hints apply.
    table += [("merge_patches", f"{d} x4", ("float32", "float64"), _merge(d, 4)) for d in ("fwd", "bwd")]
    return [Case(op, v, dt, call) for op, v, dtypes, call in sorted(table, key=lambda c: (c[0], c[1]))
            for dt in dtypes]


CASES = _cases()
