"""Small random calls of every CUDA kernel entry point, for the simulator tests.

Each case names the .cu file stem it exercises (what `make cuda-sim OPS=...` selects) and
builds the arguments of one private `sr_ops` schema; the test runs the schema on the
simulated CUDA kernels (`torch.ops.sr_ops_cudasim`) and on the CPU kernels
(`torch.ops.sr_ops`) and compares. Sizes stay small, since every simulated CUDA thread is
a host thread, but cover several blocks, partial tiles and partial warps, borders, k = 1,
and sizes that are not multiples of the strides.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

cpu_ops = torch.ops.sr_ops


@dataclass
class Case:
    stem: str  # csrc/cuda/<stem>.cu
    name: str
    op: str  # private schema name, e.g. "_eca_fwd"
    make: Callable[[torch.Generator, torch.dtype], tuple]
    half: bool = True  # also run float16 / bfloat16

    @property
    def id(self) -> str:
        return f"{self.stem}-{self.name}"


def _randn(g, dtype, *shape):
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


def _grid(n, p, t):
    return (n - p) // t + 1


def _patch2img(B, C, P, H, W, t):
    def make(g, dt):
        L = _grid(H, P, t) * _grid(W, P, t)
        return (_randn(g, dt, B, L, C, P, P), H, W, t)
    return make


def _patch2img_bwd(B, C, P, H, W, t):
    return lambda g, dt: (_randn(g, dt, B, C, H, W), P, t)


def _knn(B, C, H, W, Hk, Wk, k, P, t, window, scale, offset=-1):
    return lambda g, dt: (_randn(g, dt, B, C, H, W), _randn(g, dt, B, C, Hk, Wk), k, P, t, window, scale, offset)


def _knn_bwd(B, C, H, W, Hk, Wk, k, P, t):
    def make(g, dt):
        q, key = _randn(g, torch.float64, B, C, H, W), _randn(g, torch.float64, B, C, Hk, Wk)
        _, idx = cpu_ops._cross_scale_knn_fwd(q, key, k, P, t, -1, 1)
        acc = torch.float64 if dt == torch.float64 else torch.float32
        return (_randn(g, acc, *idx.shape), idx, q.to(dt), key.to(dt), P, t)
    return make


def _vertex_map(shape, Hk, Wk, scale, P, t):
    def make(g, dt):
        n = _grid(Hk, P, t) * _grid(Wk, P, t)
        return (torch.randint(0, n, shape, generator=g), Hk, Wk, scale, P, t)
    return make


def _adapn(lead, k, C, P, p, bwd):
    def make(g, dt):
        z, q = _randn(g, dt, *lead, k, C, P, P), _randn(g, dt, *lead, C, p, p)
        return ((_randn(g, dt, *z.shape), z, q, 1e-5) if bwd else (z, q, 1e-5))
    return make


def _graph_agg(B, C, H, W, Hk, Wk, k, s, P, t, weighted, adapn, bwd):
    def make(g, dt):
        m, n = _grid(H, P, t) * _grid(W, P, t), _grid(Hk, P, t) * _grid(Wk, P, t)
        feat, qf = _randn(g, dt, B, C, H, W), _randn(g, dt, B, C, H, W)
        idx = torch.randint(0, n, (B, m, k), generator=g)
        w = torch.softmax(_randn(g, torch.float64, B, k, s * H, s * W), 1).to(dt) if weighted else None
        rest = (Hk, Wk, s, P, t, adapn, 1e-5)
        if not bwd:
            return (feat, idx, qf, w) + rest
        out = (B, C, s * H, s * W) if weighted else (B, k, C, s * H, s * W)
        return (_randn(g, dt, *out), feat, idx, qf, w) + rest
    return make


def _layernorm(B, C, H, W, bwd):
    def make(g, dt):
        x, w, b = _randn(g, dt, B, C, H, W) * 3 + 1, _randn(g, dt, C), _randn(g, dt, C)
        return ((_randn(g, dt, *x.shape), x, w, b, 1e-6) if bwd else (x, w, b, 1e-6))
    return make


def _offset1(t):
    # A contiguous copy of t at storage offset 1: its data pointer is not 16-byte aligned, so
    # the kernels that read 128-bit words take their scalar path.
    out = torch.empty(t.numel() + 1, dtype=t.dtype)[1:].view(t.shape)
    return out.copy_(t)


def _misaligned(make):
    # make's tensors of 4 or more dimensions (maps, patches) moved to storage offset 1.
    def wrapped(g, dt):
        return tuple(_offset1(a) if isinstance(a, torch.Tensor) and a.dim() >= 4 else a for a in make(g, dt))
    return wrapped


def _gelu_layernorm(B, C, H, W, approximate):
    return lambda g, dt: (_randn(g, dt, B, C, H, W) * 2, _randn(g, dt, C), _randn(g, dt, C), 1e-6, approximate)


def _eca(B, C, H, W, k, bwd):
    def make(g, dt):
        x, w = _randn(g, dt, B, C, H, W), _randn(g, dt, k)
        return ((_randn(g, dt, *x.shape), x, w) if bwd else (x, w))
    return make


def _dwconv(B, C, H, W, k, gate, bwd):
    def make(g, dt):
        Co = C // 2 if gate else C
        args = (_randn(g, dt, B, C, H, W), _randn(g, dt, C, 1, k, k) / k, _randn(g, dt, C),
                _randn(g, dt, Co, Co, 1, 1) / Co, _randn(g, dt, Co), gate)
        return ((_randn(g, dt, B, Co, H, W),) + args) if bwd else args
    return make


def _windows(g, B, C, H, W, P, t, K):
    img = torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    _, coords = cpu_ops._extract_patches_fwd(img, P, t)
    ids = torch.randint(0, K, (coords.shape[0],), generator=g)
    order, _ = cpu_ops._class_dispatch_fwd(ids, K)
    return coords, order


def _gather(B, C, H, W, P, t, bwd):
    def make(g, dt):
        coords, order = _windows(g, B, C, H, W, P, t, 3)
        if bwd:
            return (_randn(g, dt, coords.shape[0], C, P, P), coords, order, B, H, W)
        return (_randn(g, dt, B, C, H, W), coords, order, P)
    return make


def _merge(B, C, H, W, P, t, s, bwd):
    def make(g, dt):
        coords, order = _windows(g, B, C, H, W, P, t, 4)
        if bwd:
            return (_randn(g, dt, B, C, s * H, s * W), coords, order, P, s)
        return (_randn(g, dt, coords.shape[0], C, s * P, s * P), coords, order, B, H, W, s)
    return make


def _dispatch(N, K, logits):
    def make(g, dt):
        x = _randn(g, dt, N, K) if logits else torch.randint(0, K, (N,), generator=g)
        return (x, K)
    return make


CASES = [
    Case("patch2img", "fwd", "_patch2img_fwd", _patch2img(2, 3, 3, 9, 8, 2)),
    Case("patch2img", "fwd-p1", "_patch2img_fwd", _patch2img(1, 2, 1, 5, 7, 1)),
    Case("patch2img", "fwd-gap", "_patch2img_fwd", _patch2img(1, 2, 2, 9, 10, 3)),  # uncovered pixels
    Case("patch2img", "bwd", "_patch2img_bwd", _patch2img_bwd(2, 3, 3, 9, 8, 2)),
    # 16-value patches and 72-pixel planes: one 128-bit store per thread for every dtype.
    Case("patch2img", "bwd-vec", "_patch2img_bwd", _patch2img_bwd(2, 3, 4, 10, 9, 2)),
    Case("patch2img", "fwd-vec-gap", "_patch2img_fwd", _patch2img(1, 2, 4, 8, 9, 3)),
    Case("cross_scale_knn", "fwd-window", "_cross_scale_knn_fwd", _knn(1, 2, 13, 11, 8, 7, 4, 3, 1, 3, 2)),
    Case("cross_scale_knn", "fwd-global", "_cross_scale_knn_fwd", _knn(2, 3, 9, 10, 6, 7, 5, 3, 2, -1, 1)),
    Case("cross_scale_knn", "fwd-k1", "_cross_scale_knn_fwd", _knn(1, 1, 17, 5, 9, 4, 1, 2, 1, 4, 2)),
    # IGNN's official window rule at x3: divisor 2, offset window // 3
    Case("cross_scale_knn", "fwd-offset", "_cross_scale_knn_fwd", _knn(1, 2, 19, 17, 9, 8, 3, 3, 1, 4, 2, 1)),
    Case("cross_scale_knn", "fwd-deep", "_cross_scale_knn_fwd", _knn(1, 9, 8, 8, 5, 5, 3, 3, 1, 2, 1)),
    Case("cross_scale_knn_backward", "bwd", "_cross_scale_knn_bwd", _knn_bwd(1, 2, 9, 8, 7, 6, 3, 3, 1)),
    Case("cross_scale_knn_backward", "bwd-stride2", "_cross_scale_knn_bwd", _knn_bwd(2, 3, 12, 11, 9, 8, 4, 3, 2)),
    Case("vertex_map", "fwd", "_vertex_map_fwd", _vertex_map((3, 50, 4), 11, 9, 2, 3, 2), half=False),
    Case("vertex_map", "fwd-odd", "_vertex_map_fwd", _vertex_map((3, 7, 5), 11, 9, 2, 3, 2), half=False),
    Case("adapn", "fwd", "_adapn_fwd", _adapn((7,), 3, 2, 6, 3, False)),
    Case("adapn", "fwd-lead", "_adapn_fwd", _adapn((2, 3), 1, 3, 4, 2, False)),
    Case("adapn", "bwd", "_adapn_bwd", _adapn((7,), 3, 2, 6, 3, True)),
    # Patches of 64 and 16 values (128-bit loads for every dtype), and at offset 1 (scalar).
    Case("adapn", "fwd-vec", "_adapn_fwd", _adapn((5,), 2, 3, 8, 4, False)),
    Case("adapn", "bwd-vec", "_adapn_bwd", _adapn((5,), 2, 3, 8, 4, True)),
    Case("adapn", "bwd-offset1", "_adapn_bwd", _misaligned(_adapn((5,), 2, 3, 8, 4, True))),
    Case("graph_aggregate", "fwd-weights", "_graph_aggregate_fwd", _graph_agg(1, 2, 9, 8, 4, 4, 3, 2, 3, 1, True, True, False)),
    Case("graph_aggregate", "fwd-plain", "_graph_aggregate_fwd", _graph_agg(2, 2, 7, 9, 3, 4, 2, 2, 3, 2, False, False, False)),
    Case("graph_aggregate", "bwd-weights", "_graph_aggregate_bwd", _graph_agg(1, 2, 9, 8, 4, 4, 3, 2, 3, 1, True, True, True)),
    Case("graph_aggregate", "bwd-plain", "_graph_aggregate_bwd", _graph_agg(1, 2, 7, 7, 3, 3, 2, 2, 3, 2, False, False, True)),
    Case("graph_aggregate", "bwd-adapn", "_graph_aggregate_bwd", _graph_agg(1, 3, 8, 7, 4, 3, 2, 2, 3, 1, False, True, True)),
    # The last key row's/column's regions overhang feat (read 0, no gradient there).
    Case("graph_aggregate", "fwd-overhang", "_graph_aggregate_fwd", _graph_agg(1, 2, 13, 11, 7, 7, 3, 2, 3, 2, True, True, False)),
    Case("graph_aggregate", "bwd-overhang", "_graph_aggregate_bwd", _graph_agg(1, 2, 13, 14, 7, 7, 2, 3, 3, 2, True, True, True)),
    Case("graph_aggregate", "bwd-overhang-plain", "_graph_aggregate_bwd", _graph_agg(1, 2, 13, 14, 7, 7, 2, 3, 3, 2, False, True, True)),
    Case("layernorm2d", "fwd", "_layernorm2d_fwd", _layernorm(2, 5, 9, 31, False)),
    Case("layernorm2d", "bwd", "_layernorm2d_bwd", _layernorm(2, 5, 9, 31, True)),
    Case("layernorm2d", "bwd-1px", "_layernorm2d_bwd", _layernorm(3, 2, 1, 1, True)),
    Case("layernorm2d", "gelu-fwd", "_gelu_layernorm2d_fwd", _gelu_layernorm(2, 5, 9, 31, "none")),
    Case("layernorm2d", "gelu-tanh-fwd", "_gelu_layernorm2d_fwd", _gelu_layernorm(1, 24, 3, 7, "tanh")),
    # H * W a multiple of 8: the 128-bit kernels for every dtype; at offset 1 the scalar ones.
    Case("layernorm2d", "fwd-vec", "_layernorm2d_fwd", _layernorm(2, 5, 4, 10, False)),
    Case("layernorm2d", "bwd-vec", "_layernorm2d_bwd", _layernorm(2, 5, 4, 10, True)),
    Case("layernorm2d", "gelu-fwd-vec", "_gelu_layernorm2d_fwd", _gelu_layernorm(2, 3, 8, 5, "none")),
    Case("layernorm2d", "fwd-offset1", "_layernorm2d_fwd", _misaligned(_layernorm(2, 5, 4, 10, False))),
    Case("layernorm2d", "bwd-offset1", "_layernorm2d_bwd", _misaligned(_layernorm(2, 5, 4, 10, True))),
    # Over 2048 pixels: the weight gradients' sums split into 3 chunks (the last one shorter).
    Case("layernorm2d", "bwd-chunks", "_layernorm2d_bwd", _layernorm(1, 2, 64, 70, True)),
    Case("eca", "fwd", "_eca_fwd", _eca(2, 7, 13, 11, 3, False)),
    Case("eca", "bwd", "_eca_bwd", _eca(2, 7, 13, 11, 5, True)),
    # H * W a multiple of 8 (128-bit kernels), at offset 1 (scalar ones), and over 2048
    # values a plane so the pooled sums split into chunks (the last one shorter).
    Case("eca", "fwd-vec", "_eca_fwd", _eca(2, 3, 4, 6, 3, False)),
    Case("eca", "bwd-vec", "_eca_bwd", _eca(2, 3, 4, 6, 3, True)),
    Case("eca", "bwd-offset1", "_eca_bwd", _misaligned(_eca(2, 3, 4, 6, 3, True))),
    Case("eca", "bwd-chunks", "_eca_bwd", _eca(1, 2, 8, 563, 3, True)),
    Case("dwconv_gate_ca", "fwd-gate", "_dwconv_gate_ca_fwd", _dwconv(2, 6, 9, 7, 3, True, False)),
    Case("dwconv_gate_ca", "fwd-nogate", "_dwconv_gate_ca_fwd", _dwconv(1, 3, 5, 6, 5, False, False)),
    # Over 256 pixels, so every thread of the per-channel block sums holds a real value.
    Case("dwconv_gate_ca", "fwd-wide", "_dwconv_gate_ca_fwd", _dwconv(1, 2, 23, 17, 3, True, False)),
    Case("dwconv_gate_ca", "bwd-wide", "_dwconv_gate_ca_bwd", _dwconv(1, 2, 23, 17, 3, True, True)),
    Case("dwconv_gate_ca", "bwd-gate", "_dwconv_gate_ca_bwd", _dwconv(2, 6, 9, 7, 3, True, True)),
    Case("dwconv_gate_ca", "bwd-nogate", "_dwconv_gate_ca_bwd", _dwconv(1, 3, 5, 6, 5, False, True)),
    # H * W a multiple of 8 (128-bit kernels; 8-pixel runs wrap rows of 6), at offset 1 (scalar
    # ones), and over 2048 pixels so the pooled and weight-gradient sums split into chunks.
    Case("dwconv_gate_ca", "fwd-vec", "_dwconv_gate_ca_fwd", _dwconv(2, 4, 4, 6, 3, True, False)),
    Case("dwconv_gate_ca", "bwd-vec", "_dwconv_gate_ca_bwd", _dwconv(2, 4, 4, 6, 3, True, True)),
    Case("dwconv_gate_ca", "bwd-vec-k5", "_dwconv_gate_ca_bwd", _dwconv(1, 3, 4, 6, 5, False, True)),
    Case("dwconv_gate_ca", "bwd-offset1", "_dwconv_gate_ca_bwd", _misaligned(_dwconv(2, 4, 4, 6, 3, True, True))),
    Case("dwconv_gate_ca", "bwd-chunks", "_dwconv_gate_ca_bwd", _dwconv(1, 2, 8, 563, 3, True, True)),
    Case("extract_patches", "fwd", "_extract_patches_fwd", lambda g, dt: (_randn(g, dt, 2, 3, 11, 9), 4, 3)),
    Case("class_dispatch", "ids", "_class_dispatch_fwd", _dispatch(77, 5, False), half=False),
    Case("class_dispatch", "logits", "_class_dispatch_fwd", _dispatch(300, 3, True)),
    # Past 2 * 264 patches: many blocks of several patches each, their counts prefix-summed.
    Case("class_dispatch", "ids-blocks", "_class_dispatch_fwd", _dispatch(1100, 3, False), half=False),
    Case("class_dispatch", "logits-blocks", "_class_dispatch_fwd", _dispatch(700, 4, True)),
    Case("gather_patches", "fwd", "_gather_patches_fwd", _gather(2, 3, 11, 10, 4, 3, False)),
    Case("gather_patches", "bwd", "_gather_patches_bwd", _gather(2, 3, 11, 10, 4, 3, True)),
    Case("merge_patches", "fwd", "_merge_patches_fwd", _merge(2, 2, 10, 11, 4, 3, 2, False)),
    Case("merge_patches", "bwd", "_merge_patches_bwd", _merge(2, 2, 10, 11, 4, 3, 2, True)),
    # Step 1 (heavy overlap) over several paste tiles; scale 4 puts every window on a multiple
    # of 4 (the vector loads), an odd patch and W keep the scalar paths.
    Case("gather_patches", "bwd-overlap", "_gather_patches_bwd", _gather(1, 2, 19, 70, 5, 1, True)),
    Case("gather_patches", "bwd-vec", "_gather_patches_bwd", _gather(2, 3, 20, 72, 8, 4, True)),
    Case("gather_patches", "fwd-vec", "_gather_patches_fwd", _gather(2, 3, 20, 72, 8, 4, False)),
    Case("merge_patches", "fwd-overlap", "_merge_patches_fwd", _merge(1, 2, 9, 18, 4, 1, 4, False)),
    Case("merge_patches", "bwd-overlap", "_merge_patches_bwd", _merge(1, 2, 9, 18, 4, 1, 4, True)),
    Case("merge_patches", "fwd-odd", "_merge_patches_fwd", _merge(1, 1, 7, 23, 3, 1, 3, False)),
]
