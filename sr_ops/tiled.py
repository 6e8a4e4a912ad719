"""Tiled inference: run an SR model on an image of any size, a tile at a time.

    >>> out = sr_ops.tiled(model, lr, scale=2, tile=256, overlap=16)        # (B, C, 2H, 2W)
    >>> out = sr_ops.tiled(model, lr, scale=2, max_memory=512 * 2**20)      # tile picked for 512 MiB

Layout (all sizes in input pixels):

* the image is split into a grid of *cores*, at most ``tile`` pixels on a side, of nearly
  equal sizes (boundaries rounded to multiples of ``align``);
* each core is run through the model with ``overlap`` pixels of context on every side
  (fewer at the image border, where the model sees the same border as on the whole image);
* across every seam the two tiles' outputs are cross-faded with a linear ramp ``overlap``
  pixels wide, centred on the seam. The ramps form a partition of unity, so each output
  pixel is a convex combination and the output is written straight into one preallocated
  tensor (no weight-sum image, no second pass).

Exactness: a pixel used from a tile lies at least ``overlap / 2`` input pixels inside
that tile's input. A fully convolutional model whose receptive-field radius is at most
``overlap / 2`` therefore gives the whole-image result (up to float rounding of the
blend, ~1e-7). Models that pixel-unshuffle by r need core boundaries on multiples of r:
pass ``align=r`` (and an ``overlap`` that is a multiple of r).

Memory (``max_memory``, bytes): the bound covers everything ``tiled`` allocates — the
output tensor, each tile's input copy, the model's working memory and output for a tile,
and the blend weights — but not the input ``x`` nor the model's parameters, which exist
before the call. The model's memory is measured on probe tiles that double from 2·overlap
(see ``_probe_cost``) and fitted as ``a + b * pixels`` from the two largest; the tile is
the largest square that keeps the fit, with a margin, under what the output leaves. The
probe's measure does not depend on what the allocator kept from earlier calls
(``sr_ops.bench.memory.model_peak_bytes``): on a GPU the CUDA allocator's peak; on the
CPU the larger of the live-tensor peak (the profiler's record of every allocation) and the
resident-set growth after trimming the heap (which also sees memory a kernel takes outside
torch's allocator).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

__all__ = ["tiled", "tiled_stream", "tile_spans", "pick_tile"]

# The fitted per-pixel cost is scaled by this before solving for the tile side: the RSS
# of a call varies a little with allocator state and convolution algorithm choices.
_SAFETY = 1.25


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def tile_spans(n: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int]]:
    """Cores [a, b) covering 0..n: at most ``tile`` long (unless ``align`` forces more),
    nearly equal, inner boundaries on multiples of ``align``.

    Raises ValueError when a core would be shorter than ``overlap`` (the seam ramps of
    its two sides would meet).
    """
    count = max(1, math.ceil(n / tile))
    bounds = [0]
    for k in range(1, count):
        b = int(round(k * n / count / align)) * align
        if bounds[-1] < b < n:
            bounds.append(b)
    bounds.append(n)
    spans = list(zip(bounds[:-1], bounds[1:]))
    if len(spans) > 1 and min(b - a for a, b in spans) < overlap:
        raise ValueError(f"tile={tile} is too small for overlap={overlap} (align={align}) on a side of "
                         f"{n} pixels: every tile must be at least overlap long; use tile >= 2*overlap")
    return spans


def _ramp(lo: int, hi: int, a: int, b: int, n: int, overlap: int, scale: int,
          dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Blend weights of core [a, b) over its output pixels scale*[lo, hi): 1 inside the
    core, linear ramps of width ``overlap`` centred on inner seams, 0 beyond them."""
    u = (torch.arange(scale * lo, scale * hi, device=device, dtype=torch.float64) + 0.5) / scale
    w = torch.ones_like(u)
    if overlap == 0:
        w = ((u >= a) & (u < b)).to(torch.float64)
    else:
        half = overlap / 2
        if a > 0:
            w = w * ((u - (a - half)) / overlap).clamp(0, 1)
        if b < n:
            w = w * (((b + half) - u) / overlap).clamp(0, 1)
    return w.to(dtype)


def _probe_cost(model: Callable, x: torch.Tensor, base: int, avail: float) -> tuple[float, float]:
    """(a, b): the model's peak memory for a tile of p input pixels ~ a + b * p bytes,
    from probe tiles of x's batch, channels and dtype (random content).

    The probes double from ``base`` while the fit says the next one stays under a
    quarter of ``avail`` (up to 8 * base): small tiles understate the per-pixel cost
    (fixed buffers dominate them), so the slope comes from the two largest."""
    from sr_ops.bench.memory import model_peak_bytes

    batch, channels = x.shape[:2]
    sides, measured = [], []
    side = base
    while True:
        def call(side=side):
            t = torch.rand(batch, channels, side, side, dtype=x.dtype, device=x.device)
            return model(t)
        peak = model_peak_bytes(call, x.device)
        if peak is None:
            raise RuntimeError("cannot measure the model's memory here; pass tile= instead")
        sides.append(side)
        measured.append(peak)
        if len(sides) >= 2:
            a, b = _fit(sides[-2:], measured[-2:])
            if len(sides) == 4 or a + b * (2 * side) ** 2 > avail / 4:
                return a, b
        side *= 2


def _fit(sides: list[int], measured: list[int]) -> tuple[float, float]:
    (s1, s2), (m1, m2) = sides, measured
    slope = (m2 - m1) / (s2 * s2 - s1 * s1)
    if slope <= 0:  # measurement noise swamped the difference: charge everything per pixel
        return 0.0, m2 / (s2 * s2)
    return max(m1 - slope * s1 * s1, 0.0), slope


def pick_tile(model: Callable, x: torch.Tensor, scale: int, overlap: int, max_memory: int,
              out_channels: int | None = None, align: int = 1) -> int:
    """Largest core side whose tiles keep ``tiled``'s peak under ``max_memory`` bytes
    (see the module docstring for what counts). Raises ValueError when even the output
    or the smallest usable tile does not fit."""
    batch, channels, h, w = x.shape
    out_bytes = batch * (out_channels or channels) * scale * scale * h * w * x.element_size()
    if max_memory - out_bytes <= 0:
        raise ValueError(f"max_memory={max_memory} bytes cannot hold the output alone "
                         f"({out_bytes} bytes); raise it or upscale a crop")
    return _pick(model, tuple(x.shape), x.dtype, x.device, scale, overlap, max_memory - out_bytes,
                 0, align, f"the output takes {out_bytes} bytes and ")


def _pick(model, shape, dtype, device, scale, overlap, avail, band_channels, align, spent="") -> int:
    """Largest core side whose tile (model, blend weights) and, when ``band_channels``, the
    band of output rows it is blended into, fit ``avail`` bytes."""
    batch, channels, _, w = shape
    item = torch.empty((), dtype=dtype).element_size()
    base = 16 * math.ceil(max(2 * overlap, 16) / 16)  # multiples of 16 suit unshuffling models
    probe = torch.empty(batch, channels, 1, 1, dtype=dtype, device=device)
    a, b = _probe_cost(model, probe, base, avail)
    # a tile of side n input pixels: the model (fitted) + blend weights, quadratic in n; the
    # band of output rows it is blended into, linear in n; the seam rows carried across
    quad = _SAFETY * b + scale * scale * item
    lin = batch * band_channels * scale * scale * w * item
    const = _SAFETY * a + lin * 2 * overlap
    room = avail - const
    side_in = math.floor((-lin + math.sqrt(lin * lin + 4 * quad * room)) / (2 * quad)) if room > 0 else 0
    core = (side_in - 2 * overlap) // align * align
    if core < max(2 * overlap, align, 1):
        need = quad * (4 * overlap) ** 2 + lin * 4 * overlap + const
        raise ValueError(f"max_memory is too small: {spent}a tile of {2 * overlap} pixels plus the overlap "
                         f"needs about {int(need)} bytes, {int(avail)} are left")
    return core


def _check_args(scale, tile, overlap, max_memory, align) -> None:
    _check_int("scale", scale, 1)
    _check_int("overlap", overlap, 0)
    _check_int("align", align, 1)
    if tile is not None:
        _check_int("tile", tile, 1)
    if max_memory is not None:
        _check_int("max_memory", max_memory, 1)


def tiled(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: int,
          tile: int | None = None, overlap: int = 16, max_memory: int | None = None, *,
          align: int = 1, progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Upscale ``x`` with ``model`` tile by tile; returns what ``model(x)`` would.

    x: (B, C, H, W) or (C, H, W), float. ``model`` maps (B, C, h, w) to (B, C', scale*h,
    scale*w). ``tile``: largest core side in input pixels (default 512, or picked from
    ``max_memory`` when that is given; with both, the smaller). ``overlap``: context
    pixels on each side of a core, also the width of the seam ramps. ``progress(done,
    total)`` is called after each tile. Runs without autograd.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"x must be a floating-point tensor, got {got}")
    if x.dim() not in (3, 4):
        raise ValueError(f"x must be (B, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    if x.dim() == 3:
        return tiled(model, x.unsqueeze(0), scale, tile, overlap, max_memory, align=align, progress=progress)[0]
    _check_args(scale, tile, overlap, max_memory, align)
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"x must have a non-empty image, got shape {tuple(x.shape)}")

    with torch.no_grad():
        if max_memory is not None:
            picked = pick_tile(model, x, scale, overlap, max_memory, align=align)
            tile = picked if tile is None else min(tile, picked)
        elif tile is None:
            tile = 512
        out = []  # the whole output, made at the first tile (its channels are the model's)
        _run(model, lambda y0, y1, x0, x1: x[:, :, y0:y1, x0:x1].contiguous(), tuple(x.shape), scale, tile,
             overlap, align, progress, out=out)
        return out[0]


def tiled_stream(model: Callable[[torch.Tensor], torch.Tensor], read: Callable[[int, int, int, int], torch.Tensor],
                 shape: tuple[int, int, int, int], scale: int, write: Callable[[int, torch.Tensor], None],
                 tile: int | None = None, overlap: int = 16, max_memory: int | None = None, *,
                 align: int = 1, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                 out_channels: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> int:
    """``tiled`` for images that never exist whole as float tensors (the CLI's 8/16-bit files).

    ``read(y0, y1, x0, x1)`` returns the input rows [y0, y1) and columns [x0, x1) as a
    (B, C, y1-y0, x1-x0) tensor of ``dtype`` on ``device``; ``shape`` is the whole input's
    (B, C, H, W). ``write(row, rows)`` receives finished output rows [row, row + n) as
    (B, C', n, scale*W) tensors, top to bottom, each row once. Only one band of output
    rows (a tile row plus its seams) is held at a time. ``max_memory`` (bytes) covers the
    tiles, the model's working memory and that band, not what ``read`` and ``write``
    hold. Returns the tile side used.
    """
    _check_args(scale, tile, overlap, max_memory, align)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"shape must be a non-empty (B, C, H, W), got {shape}")
    with torch.no_grad():
        if max_memory is not None:
            picked = _pick(model, shape, dtype, torch.device(device), scale, overlap, max_memory,
                           out_channels or shape[1], align)
            tile = picked if tile is None else min(tile, picked)
        elif tile is None:
            tile = 512
        _run(model, read, shape, scale, tile, overlap, align, progress, write=write)
    return tile


def _run(model, read, shape, scale, tile, overlap, align, progress, write=None, out=None) -> None:
    """Tiles blended into a band of output rows per tile row: a view of ``out[0]`` (made
    here) when ``out`` is a list, else a buffer whose finished rows go to ``write``."""
    batch, channels, h, w = shape
    rows, cols = tile_spans(h, tile, overlap, align), tile_spans(w, tile, overlap, align)
    total, done = len(rows) * len(cols), 0
    carry = None  # output rows of the previous band that this band also blends into
    for i, (a, b) in enumerate(rows):
        y0, y1 = max(a - overlap, 0), min(b + overlap, h)
        band = wy = None
        for c, d in cols:
            x0, x1 = max(c - overlap, 0), min(d + overlap, w)
            y = model(read(y0, y1, x0, x1))
            expect = (scale * (y1 - y0), scale * (x1 - x0))
            if y.dim() != 4 or tuple(y.shape[-2:]) != expect or y.shape[0] != batch:
                raise ValueError(f"model returned shape {tuple(y.shape)} for a tile of "
                                 f"{(batch, channels, y1 - y0, x1 - x0)}; "
                                 f"expected (B, C', {expect[0]}, {expect[1]}) for scale={scale}")
            if wy is None:
                wy = _ramp(y0, y1, a, b, h, overlap, scale, y.dtype, y.device)
            if band is None and out is not None:
                if not out:
                    out.append(y.new_zeros(batch, y.shape[1], scale * h, scale * w))
                band = out[0][:, :, scale * y0:scale * y1]
            elif band is None:
                band = y.new_zeros(batch, y.shape[1], scale * (y1 - y0), scale * w)
                if carry is not None:
                    band[:, :, :carry.shape[2]] = carry
                    carry = None
            wx = _ramp(x0, x1, c, d, w, overlap, scale, y.dtype, y.device)
            # addcmul reads y without writing it: the model may hand back a shared buffer.
            band[:, :, :, scale * x0:scale * x1].addcmul_(y, wy[:, None] * wx[None, :])
            del y
            done += 1
            if progress is not None:
                progress(done, total)
        if out is not None:
            continue
        # rows above the next band's first input row get nothing more from it
        next_y0 = max(rows[i + 1][0] - overlap, 0) if i + 1 < len(rows) else y1
        final = scale * (next_y0 - y0)
        if final < band.shape[2]:
            carry = band[:, :, final:].clone()
        write(scale * y0, band[:, :, :final])
        del band
