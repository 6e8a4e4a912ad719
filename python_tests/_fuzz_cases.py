"""Random valid calls of every op, for the property-based suite (test_fuzz.py).

Each builder takes hypothesis's ``draw``, a device and whether to plant NaN/inf in the
main float input, and returns a Call: the op's positional arguments, which of them are
differentiable, and whether the outputs must match the reference exactly (integer
outputs). Ops with integer inputs only take no plant.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from hypothesis import strategies as st


@dataclass
class Call:
    args: tuple
    grad: list[int] = field(default_factory=list)  # positions of differentiable tensors
    exact: bool = False


def tensor(draw, shape, dev, *, lo=-2.0, hi=2.0, integer_valued=False, plant=None, dtype=torch.float32):
    """Random float tensor; maybe non-contiguous (a strided view of a bigger buffer); with
    ``plant`` a few entries set to NaN / +inf / -inf."""
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if integer_valued:  # squared distances of these are exact in float32: ties are real ties
        x = torch.randint(int(lo), int(hi) + 1, shape, generator=gen).to(dtype)
    else:
        x = torch.rand(shape, generator=gen, dtype=torch.float64).mul_(hi - lo).add_(lo).to(dtype)
    if plant is not None and x.numel():
        count = draw(st.integers(1, min(3, x.numel())))
        flat = torch.randint(0, x.numel(), (count,), generator=gen)
        x.view(-1)[flat] = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}[plant]
    if draw(st.booleans()) and x.dim() >= 1:
        wide = torch.empty(*shape[:-1], 2 * shape[-1] + 1, dtype=dtype)[..., 1::2]
        x = wide.copy_(x)
    return x.to(dev)


def index_tensor(draw, values: torch.Tensor, dev) -> torch.Tensor:
    if draw(st.booleans()) and values.dim() >= 1 and values.numel():
        wide = torch.empty(*values.shape[:-1], 2 * values.shape[-1], dtype=values.dtype)[..., ::2]
        values = wide.copy_(values)
    return values.to(dev)


def grid(n, p, t):
    return (n - p) // t + 1


def adapn(draw, dev, plant=None):
    lead = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    k, c = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    big, small = draw(st.integers(2, 5)), draw(st.integers(2, 5))
    nb = tensor(draw, (*lead, k, c, big, big), dev, plant=plant)
    q = tensor(draw, (*lead, c, small, small), dev, lo=-3, hi=5)
    eps = draw(st.sampled_from([0.0, 1e-5, 0.1]))
    return Call((nb, q, eps), [0, 1])


def class_dispatch(draw, dev, plant=None):
    assert plant is None, "integer inputs: nothing to plant"
    n, k = draw(st.integers(0, 40)), draw(st.integers(1, 6))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if draw(st.booleans()):
        arg = index_tensor(draw, torch.randint(0, k, (n,), generator=gen), dev)
    else:  # coarse logits: ties between classes are common
        arg = tensor(draw, (n, k), dev, lo=0, hi=2, integer_valued=True)
    return Call((arg, k), exact=True)


def cross_scale_knn(draw, dev, plant=None):
    p, t, s = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    b, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    hk, wk = draw(st.integers(p, p + 5)), draw(st.integers(p, p + 5))
    h, w = draw(st.integers(p, p + 7)), draw(st.integers(p, p + 7))
    window = draw(st.sampled_from([None, 1, 2, 3, 30]))
    n1, n2 = grid(hk, p, t), grid(wk, p, t)
    cands = n1 * n2 if window is None else min(window, n1) * min(window, n2)
    k = draw(st.sampled_from([1, cands, draw(st.integers(1, cands))]))
    q = tensor(draw, (b, c, h, w), dev, lo=-2, hi=2, integer_valued=True, plant=plant)
    key = tensor(draw, (b, c, hk, wk), dev, lo=-2, hi=2, integer_valued=True)
    rule = None if draw(st.booleans()) else (draw(st.integers(1, 3)), draw(st.integers(0, 4)))  # window_start
    return Call((q, key, k, p, t, window, s, rule), [0, 1])


def dwconv_gate_ca(draw, dev, plant=None):
    gate = draw(st.booleans())
    c = 2 * draw(st.integers(1, 3)) if gate else draw(st.integers(1, 5))
    cc = c // 2 if gate else c
    kk = draw(st.sampled_from([1, 3, 5]))
    b, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    args = (tensor(draw, (b, c, h, w), dev, plant=plant), tensor(draw, (c, 1, kk, kk), dev),
            tensor(draw, (c,), dev), tensor(draw, (cc, cc, 1, 1), dev), tensor(draw, (cc,), dev), gate)
    return Call(args, [0, 1, 2, 3, 4])


def eca(draw, dev, plant=None):
    b, c, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 9)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    kk = draw(st.sampled_from([1, 3, 5]))
    weight = tensor(draw, (1, 1, kk) if draw(st.booleans()) else (kk,), dev)
    return Call((tensor(draw, (b, c, h, w), dev, plant=plant), weight), [0, 1])


def extract_patches(draw, dev, plant=None):
    b, c, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    p = draw(st.integers(1, min(h, w)))
    t = draw(st.integers(1, p + 2))
    return Call((tensor(draw, (b, c, h, w), dev, plant=plant), p, t), [0])


def _corners(draw, b, h, w, p, n):
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    coords = torch.stack([torch.randint(0, b, (n,), generator=gen), torch.randint(0, h - p + 1, (n,), generator=gen),
                          torch.randint(0, w - p + 1, (n,), generator=gen)], 1)
    order = torch.randperm(n, generator=gen) if draw(st.booleans()) else torch.randint(0, n, (n,), generator=gen)
    return coords, order


def gather_patches(draw, dev, plant=None):
    b, c, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    p, n = draw(st.integers(1, min(h, w))), draw(st.integers(1, 12))
    coords, order = _corners(draw, b, h, w, p, n)
    return Call((tensor(draw, (b, c, h, w), dev, plant=plant), index_tensor(draw, coords, dev),
                 index_tensor(draw, order, dev), p), [0])


def merge_patches(draw, dev, plant=None):
    b, c, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    p, n, s = draw(st.integers(1, min(h, w))), draw(st.integers(1, 12)), draw(st.integers(1, 3))
    coords, order = _corners(draw, b, h, w, p, n)
    outputs = tensor(draw, (n, c, s * p, s * p), dev, plant=plant)
    return Call((outputs, index_tensor(draw, coords, dev), index_tensor(draw, order, dev), (b, h, w), s), [0])


def graph_aggregate(draw, dev, plant=None):
    p, t, s = draw(st.integers(2, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    b, c, k = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    hk, wk = draw(st.integers(p, p + 3)), draw(st.integers(p, p + 3))
    # From the smallest feat every region starts in (the last ones overhang it) to past s·Hk.
    lo_h, lo_w = (max(p, s * t * (grid(n, p, t) - 1) + 1) for n in (hk, wk))
    h, w = draw(st.integers(lo_h, s * hk + 4)), draw(st.integers(lo_w, s * wk + 4))
    n, m = grid(hk, p, t) * grid(wk, p, t), grid(h, p, t) * grid(w, p, t)
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    idx = index_tensor(draw, torch.randint(0, n, (b, m, k), generator=gen), dev)
    weights = tensor(draw, (b, k, s * h, s * w), dev, lo=0, hi=1) if draw(st.booleans()) else None
    use_adapn = draw(st.booleans())
    args = (tensor(draw, (b, c, h, w), dev, plant=plant), idx, tensor(draw, (b, c, h, w), dev, lo=-1, hi=3),
            (hk, wk), s, p, t,
            weights, use_adapn, draw(st.sampled_from([0.0, 1e-5])) if use_adapn else 1e-5)
    return Call(args, [0, 2] + ([7] if weights is not None else []))


def naf_ffn(draw, dev, plant=None):
    b, c, f = draw(st.integers(1, 2)), draw(st.integers(1, 9)), draw(st.integers(1, 6))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 40))  # up to 360 pixels: past one 256-pixel tile
    args = (tensor(draw, (b, c, h, w), dev, lo=-2, hi=3, plant=plant), tensor(draw, (c,), dev), tensor(draw, (c,), dev),
            tensor(draw, (2 * f, c, 1, 1), dev, lo=-0.5, hi=0.5), tensor(draw, (2 * f,), dev),
            tensor(draw, (c, f, 1, 1), dev, lo=-0.5, hi=0.5), tensor(draw, (c,), dev),
            tensor(draw, (1, c, 1, 1) if draw(st.booleans()) else (c,), dev),
            draw(st.sampled_from([1e-6, 0.1])))
    return Call(args, [0, 1, 2, 3, 4, 5, 6, 7])


def layernorm2d(draw, dev, plant=None):
    b, c, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 9)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    args = (tensor(draw, (b, c, h, w), dev, lo=-3, hi=4, plant=plant), tensor(draw, (c,), dev), tensor(draw, (c,), dev),
            draw(st.sampled_from([0.0, 1e-6, 0.1])))
    return Call(args, [0, 1, 2])


def gelu_layernorm2d(draw, dev, plant=None):
    b, c, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 9)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    # eps >= 1e-6: GELU maps every x below about -5.7 to the same 0, so a pixel's channels can
    # tie exactly, and with eps = 0 its 1/sqrt(0) differs by backend only in how NaN arises.
    args = (tensor(draw, (b, c, h, w), dev, lo=-3, hi=4, plant=plant), tensor(draw, (c,), dev), tensor(draw, (c,), dev),
            draw(st.sampled_from([1e-6, 0.1])), draw(st.sampled_from(["none", "tanh"])))
    return Call(args, [0, 1, 2])


def patch2img(draw, dev, plant=None):
    p, t = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    h, w = draw(st.integers(p, p + 8)), draw(st.integers(p, p + 8))
    b, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    patches = tensor(draw, (b, grid(h, p, t) * grid(w, p, t), c, p, p), dev, plant=plant)
    return Call((patches, (h, w), p, t), [0])


def vertex_map(draw, dev, plant=None):
    assert plant is None, "integer inputs: nothing to plant"
    p, t, s = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    hk, wk = draw(st.integers(p, p + 9)), draw(st.integers(p, p + 9))
    n = grid(hk, p, t) * grid(wk, p, t)
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    shape = draw(st.lists(st.integers(0, 4), min_size=0, max_size=3))
    return Call((index_tensor(draw, torch.randint(0, n, shape, generator=gen), dev), (hk, wk), s, p, t), exact=True)


INTEGER_INPUTS = {"class_dispatch", "vertex_map"}
BUILDERS = {f.__name__: f for f in (adapn, class_dispatch, cross_scale_knn, dwconv_gate_ca, eca, extract_patches,
                                    gather_patches, gelu_layernorm2d, graph_aggregate, layernorm2d, merge_patches,
                                    naf_ffn, patch2img, vertex_map)}
