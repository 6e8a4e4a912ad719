"""Hunting generators for the differential fuzz suite (test_fuzz.py).

Each builder takes a ``Draw`` (a seeded source of choices) and a device and returns a Call:
the op's positional arguments, which of them are differentiable, whether the outputs must
equal the reference exactly, and a line describing the case. The draws go where kernels
break rather than where models live: every channel count from 1 to 17 plus 24, 31, 33 and
64 (vector-width remainders), sizes 0 and 1 on every axis, means 1e2-1e4 times the spread
(cancellation in variances and distances), NaN/inf on the borders and in the weights' taps
that meet zero padding, eps = 0 on constant pixels, channels-last and strided layouts, and
float16/bfloat16 inputs (judged against float64 by the suite).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

CHANNELS = [*range(1, 18), 24, 31, 33, 64]
HALF = (torch.float16, torch.bfloat16)
NONFINITE = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


@dataclass
class Call:
    args: tuple
    grad: list[int] = field(default_factory=list)  # positions of differentiable tensors
    exact: bool = False  # integer outputs, copies: equal to the reference bit for bit
    about: str = ""


class Draw:
    """The choices of one case, from its seed. ``dtype``, ``plant`` (None, "nan", "inf",
    "-inf"), ``where`` it goes ("border", "any" or "weight") and ``mean`` (the offset of the
    main input, in units of its spread) are drawn once per case; the builders ask for the rest."""

    def __init__(self, seed: int, dev: torch.device, nonfinite: bool):
        self.r = random.Random(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.dev = dev
        self.dtype = self.pick([torch.float32] * 6 + [torch.float64, torch.float16, torch.bfloat16])
        self.plant = self.pick(list(NONFINITE)) if nonfinite else None
        self.where = self.pick(["border", "border", "any", "weight"]) if nonfinite else None
        self.mean = self.pick([0.0, 0.0, 0.0, 1e2, 1e3, 1e4])
        self.notes: list[str] = [f"{str(self.dtype).removeprefix('torch.')}", f"mean {self.mean:g}"]
        if nonfinite:
            self.notes.append(f"{self.plant} in {self.where}")

    def int(self, lo: int, hi: int) -> int:
        return self.r.randint(lo, hi)

    def pick(self, seq):
        return self.r.choice(list(seq))

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def size(self, lo: int = 1, hi: int = 9, zero: float = 0.04) -> int:
        """A length: 0 now and then, 1 often, else lo..hi."""
        u = self.r.random()
        return 0 if u < zero else 1 if u < zero + 0.15 else self.int(lo, hi)

    def channels(self) -> int:
        return self.pick(CHANNELS)

    def tensor(self, shape, *, lo=-1.0, hi=1.0, main=False, weight=False, integer_valued=False, layout=True,
               dtype=None) -> torch.Tensor:
        """Uniform values in [lo, hi]; ``main`` adds the case's mean offset and takes the
        case's plant when it goes in x, ``weight`` when it goes in the weights. Maybe
        channels-last or a strided view."""
        dtype = dtype or self.dtype
        shape = tuple(shape)
        if integer_valued:
            x = torch.randint(int(lo), int(hi) + 1, shape, generator=self.gen).double()
        else:
            x = torch.rand(shape, generator=self.gen, dtype=torch.float64).mul_(hi - lo).add_(lo)
        if main and self.mean:
            x += self.mean * (hi - lo) / 2
        x = x.to(dtype)
        target = "weight" if weight else ("border", "any") if main else ()
        if self.plant and x.numel() and self.where in target:
            self._plant(x)
        return self._layout(x) if layout else x.to(self.dev)

    def _plant(self, x: torch.Tensor) -> None:
        value = NONFINITE[self.plant]
        for _ in range(self.int(1, 3)):
            pos = [self.int(0, n - 1) for n in x.shape]
            if self.where == "border" and x.dim() >= 2:  # a first/last row or column
                axis = self.pick([-1, -2])
                pos[axis] = self.pick([0, x.shape[axis] - 1])
            x[tuple(pos)] = value

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        u = self.r.random()
        if x.dim() == 4 and u < 0.25:
            return x.contiguous(memory_format=torch.channels_last).to(self.dev)
        if x.dim() >= 1 and u > 0.8:  # every other element of a wider buffer
            wide = torch.empty(*x.shape[:-1], 2 * x.shape[-1] + 1, dtype=x.dtype)[..., 1::2]
            return wide.copy_(x).to(self.dev)
        return x.to(self.dev)

    def index(self, values: torch.Tensor) -> torch.Tensor:
        if self.chance(0.3) and values.dim() >= 1 and values.numel():
            wide = torch.empty(*values.shape[:-1], 2 * values.shape[-1], dtype=values.dtype)[..., ::2]
            values = wide.copy_(values)
        return values.to(self.dev)

    def eps(self, choices=(0.0, 1e-6, 1e-6, 0.1)) -> float:
        return self.pick(choices)

    def flat_pixels(self, x: torch.Tensor, eps: float, value: float = 0.75) -> torch.Tensor:
        """With eps = 0, make some pixels equal across channels (zero variance: NaN on every
        backend); x is (B, C, H, W). ``value`` sums exactly (C * 0.75 is a float for any C
        here), so the mean of the pixel is the value whatever the order of the sum."""
        if eps == 0 and x.numel() and self.chance(0.5):
            x = x.clone()
            mask = torch.rand(x.shape[0], 1, *x.shape[2:], generator=self.gen) < 0.3
            x.masked_fill_(mask.to(x.device), value)
            self.notes.append("flat pixels")
        return x


def grid(n: int, p: int, t: int) -> int:
    return max((n - p) // t + 1, 0) if n >= p else 0


def _norm_weights(d: Draw, c: int):
    return d.tensor((c,), lo=0.5, hi=1.5, weight=True), d.tensor((c,), weight=True)


def layernorm2d(d: Draw):
    b, c, h, w = d.size(1, 2), d.channels(), d.size(), d.size()
    eps = d.eps()
    x = d.flat_pixels(d.tensor((b, c, h, w), main=True), eps)
    return Call((x, *_norm_weights(d, c), eps), [0, 1, 2], about=f"x {(b, c, h, w)} eps {eps}")


def gelu_layernorm2d(d: Draw):
    b, c, h, w = d.size(1, 2), d.channels(), d.size(), d.size()
    eps, approximate = d.eps(), d.pick(["none", "tanh"])
    # GELU(0) = 0 exactly, so flat pixels of 0 stay flat and exact after it
    x = d.flat_pixels(d.tensor((b, c, h, w), lo=-3, hi=4, main=True), eps, value=0.0)
    return Call((x, *_norm_weights(d, c), eps, approximate), [0, 1, 2], about=f"x {(b, c, h, w)} eps {eps}")


def conv3x3(d: Draw):
    b, cin, cout, h, w = d.size(1, 2), d.pick([0, *CHANNELS]), d.pick([0, *CHANNELS]), d.size(), d.size()
    x = d.tensor((b, cin, h, w), main=True)
    wt = d.tensor((cout, cin, 3, 3), lo=-0.3, hi=0.3, weight=True)
    return Call((x, wt, d.tensor((cout,), weight=True)), [0, 1, 2], about=f"x {(b, cin, h, w)} cout {cout}")


def conv3x3_layernorm2d(d: Draw):
    b, cin, cout, h, w = d.size(1, 2), d.pick([0, *CHANNELS]), d.channels(), d.size(), d.size()
    eps, gelu = d.eps(), d.chance(0.5)
    x = d.tensor((b, cin, h, w), main=True)
    wt = d.tensor((cout, cin, 3, 3), lo=-0.3, hi=0.3, weight=True)
    bias = d.tensor((cout,), weight=True)
    if eps == 0 and d.chance(0.3):  # every pixel's Cout values equal (0.75, or GELU(0) = 0): zero variance
        wt, bias = torch.zeros_like(wt), torch.full_like(bias, 0.0 if gelu else 0.75)
        d.notes.append("equal output channels")
    args = (x, wt, bias, *_norm_weights(d, cout), eps, gelu)
    return Call(args, [0, 1, 2, 3, 4], about=f"x {(b, cin, h, w)} cout {cout} eps {eps} gelu {gelu}")


def eca(d: Draw):
    b, c, h, w = d.size(1, 2), d.channels(), d.size(), d.size()
    k = d.pick([1, 3, 5, 7])
    weight = d.tensor((1, 1, k) if d.chance(0.5) else (k,), lo=-2, hi=2, weight=True)
    return Call((d.tensor((b, c, h, w), main=True), weight), [0, 1], about=f"x {(b, c, h, w)} k {k}")


def dwconv_gate_ca(d: Draw):
    gate = d.chance(0.6)
    c = 2 * d.pick(CHANNELS[:16] + [32]) if gate else d.channels()
    cc = c // 2 if gate else c
    k = d.pick([1, 3, 5, 7])
    b, h, w = d.size(1, 2), d.size(), d.size()
    args = (d.tensor((b, c, h, w), main=True), d.tensor((c, 1, k, k), weight=True), d.tensor((c,), weight=True),
            d.tensor((cc, cc, 1, 1), lo=-0.3, hi=0.3, weight=True), d.tensor((cc,), weight=True), gate)
    return Call(args, [0, 1, 2, 3, 4], about=f"x {(b, c, h, w)} k {k} gate {gate}")


def naf_ffn(d: Draw):
    b, c, f = d.size(1, 2), d.channels(), d.pick([1, 2, 3, 5, 8, 16])
    h, w = d.size(), d.size(1, 40)  # up to 360 pixels: past one 256-pixel tile
    eps = d.eps((0.0, 1e-6, 0.1))
    y = d.flat_pixels(d.tensor((b, c, h, w), lo=-2, hi=3, main=True), eps)
    args = (y, *_norm_weights(d, c), d.tensor((2 * f, c, 1, 1), lo=-0.5, hi=0.5, weight=True),
            d.tensor((2 * f,), weight=True), d.tensor((c, f, 1, 1), lo=-0.5, hi=0.5, weight=True),
            d.tensor((c,), weight=True), d.tensor((1, c, 1, 1) if d.chance(0.5) else (c,), weight=True), eps)
    return Call(args, [0, 1, 2, 3, 4, 5, 6, 7], about=f"y {(b, c, h, w)} F {f} eps {eps}")


def to_channels_last(d: Draw):
    dtype = d.pick([d.dtype, torch.int64, torch.uint8, torch.bool])
    shape = (d.size(1, 2), d.channels(), d.size(1, 17), d.size(1, 17))
    x = d.tensor(shape, lo=-50, hi=50, main=True, integer_valued=True, dtype=torch.float64)
    return Call((x.to(dtype),), [0] if dtype.is_floating_point else [], exact=True, about=f"x {shape} {dtype}")


def adapn(d: Draw):
    lead = [d.int(1, 3) for _ in range(d.int(0, 2))]
    k, c = d.size(1, 5), d.channels() if d.chance(0.3) else d.int(1, 4)
    big, small = d.int(1, 6), d.int(1, 5)
    eps = d.eps((0.0, 1e-5, 0.1))
    nb = d.tensor((*lead, k, c, big, big), main=True)
    q = d.tensor((*lead, c, small, small), lo=-3, hi=5)
    return Call((nb, q, eps), [0, 1], about=f"neighbors {(*lead, k, c, big, big)} query {small} eps {eps}")


def patch2img(d: Draw):
    p, t = d.int(1, 4), d.int(1, 5)
    h, w = d.int(p, p + 8), d.int(p, p + 8)
    b, c = d.size(1, 2), d.channels() if d.chance(0.3) else d.int(1, 3)
    patches = d.tensor((b, grid(h, p, t) * grid(w, p, t), c, p, p), main=True)
    return Call((patches, (h, w), p, t), [0], about=f"patches {tuple(patches.shape)} out {(h, w)} p {p} t {t}")


def cross_scale_knn(d: Draw):
    p, t, s = d.int(1, 3), d.int(1, 3), d.int(1, 3)
    b, c = d.size(1, 2), d.channels() if d.chance(0.3) else d.int(1, 3)
    hk, wk = d.int(p, p + 5), d.int(p, p + 5)
    h, w = d.int(p, p + 7), d.int(p, p + 7)
    window = d.pick([None, 1, 2, 3, 30])
    n1, n2 = grid(hk, p, t), grid(wk, p, t)
    cands = n1 * n2 if window is None else min(window, n1) * min(window, n2)
    k = d.pick([1, cands, d.int(1, cands)])
    # integer values (exact squared distances, so ties are real ties) around a common mean:
    # distances as |q|^2 - 2 q.k + |k|^2 cancel there
    q = d.tensor((b, c, h, w), lo=-2, hi=2, integer_valued=True, main=True)
    key = d.tensor((b, c, hk, wk), lo=-2, hi=2, integer_valued=True, main=True)
    rule = None if d.chance(0.5) else (d.int(1, 3), d.int(0, 4))  # window_start
    return Call((q, key, k, p, t, window, s, rule), [0, 1],
                about=f"query {(b, c, h, w)} key {(hk, wk)} p {p} t {t} s {s} window {window} k {k} start {rule}")


def graph_aggregate(d: Draw):
    p, t, s = d.int(2, 3), d.int(1, 3), d.int(1, 3)
    b, c, k = d.size(1, 2), d.channels() if d.chance(0.3) else d.int(1, 3), d.int(1, 3)
    hk, wk = d.int(p, p + 3), d.int(p, p + 3)
    # From the smallest feat every region starts in (the last ones overhang it) to past s·Hk.
    lo_h, lo_w = (max(p, s * t * (grid(n, p, t) - 1) + 1) for n in (hk, wk))
    h, w = d.int(lo_h, s * hk + 4), d.int(lo_w, s * wk + 4)
    n, m = grid(hk, p, t) * grid(wk, p, t), grid(h, p, t) * grid(w, p, t)
    idx = d.index(torch.randint(0, n, (b, m, k), generator=d.gen))
    weights = d.tensor((b, k, s * h, s * w), lo=0, hi=1) if d.chance(0.5) else None
    use_adapn = d.chance(0.5)
    args = (d.tensor((b, c, h, w), main=True), idx, d.tensor((b, c, h, w), lo=-1, hi=3), (hk, wk), s, p, t,
            weights, use_adapn, d.pick([0.0, 1e-5]) if use_adapn else 1e-5)
    return Call(args, [0, 2] + ([7] if weights is not None else []),
                about=f"feat {(b, c, h, w)} key {(hk, wk)} p {p} t {t} s {s} k {k} adapn {use_adapn}")


def extract_patches(d: Draw):
    b, c, h, w = d.size(1, 2), d.channels(), d.int(1, 9), d.int(1, 9)
    p = d.int(1, min(h, w))
    t = d.int(1, p + 2)
    return Call((d.tensor((b, c, h, w), main=True), p, t), [0], about=f"img {(b, c, h, w)} p {p} t {t}")


def _corners(d: Draw, b, h, w, p, n):
    coords = torch.stack([torch.randint(0, b, (n,), generator=d.gen),
                          torch.randint(0, h - p + 1, (n,), generator=d.gen),
                          torch.randint(0, w - p + 1, (n,), generator=d.gen)], 1)
    order = torch.randperm(n, generator=d.gen) if d.chance(0.5) else torch.randint(0, max(n, 1), (n,), generator=d.gen)
    return d.index(coords), d.index(order)


def gather_patches(d: Draw):
    b, c, h, w = d.int(1, 2), d.channels(), d.int(1, 9), d.int(1, 9)
    p, n = d.int(1, min(h, w)), d.size(1, 12)
    return Call((d.tensor((b, c, h, w), main=True), *_corners(d, b, h, w, p, n), p), [0],
                about=f"img {(b, c, h, w)} p {p} n {n}")


def merge_patches(d: Draw):
    b, c, h, w = d.int(1, 2), d.channels(), d.int(1, 9), d.int(1, 9)
    p, n, s = d.int(1, min(h, w)), d.size(1, 12), d.int(1, 3)
    outputs = d.tensor((n, c, s * p, s * p), main=True)
    return Call((outputs, *_corners(d, b, h, w, p, n), (b, h, w), s), [0],
                about=f"out {(b, c, h, w)} p {p} n {n} s {s}")


def class_dispatch(d: Draw):
    n, k = d.size(1, 40), d.int(1, 6)
    if d.chance(0.5):
        arg = d.index(torch.randint(0, k, (n,), generator=d.gen))
    else:  # coarse logits: ties between classes are common
        arg = d.tensor((n, k), lo=0, hi=2, integer_valued=True, main=True, dtype=torch.float32)
    return Call((arg, k), exact=True, about=f"n {n} classes {k}")


def vertex_map(d: Draw):
    p, t, s = d.int(1, 3), d.int(1, 3), d.int(1, 4)
    hk, wk = d.int(p, p + 9), d.int(p, p + 9)
    n = grid(hk, p, t) * grid(wk, p, t)
    shape = [d.size(1, 4) for _ in range(d.int(0, 3))]
    idx = d.index(torch.randint(0, n, shape, generator=d.gen))
    return Call((idx, (hk, wk), s, p, t), exact=True, about=f"idx {shape} key {(hk, wk)} p {p} t {t} s {s}")


INTEGER_INPUTS = {"class_dispatch", "vertex_map"}
# Winograd's transforms mix a tile's values: an inf there may come out NaN (docs/design.md)
INF_MAY_BE_NAN = {"conv3x3", "conv3x3_layernorm2d"}
BUILDERS = {f.__name__: f for f in (
    adapn, class_dispatch, conv3x3, conv3x3_layernorm2d, cross_scale_knn, dwconv_gate_ca, eca, extract_patches,
    gather_patches, gelu_layernorm2d, graph_aggregate, layernorm2d, merge_patches, naf_ffn, patch2img,
    to_channels_last, vertex_map)}
