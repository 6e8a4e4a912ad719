"""MATLAB-exact bicubic ``imresize`` for torch tensors.

Super-resolution benchmarks make their low-resolution inputs with MATLAB's
``imresize(img, 1/s)``; PyTorch's ``interpolate`` differs from it (other kernel
support when downscaling, other border handling), so its images do not match
the benchmark files. This module reproduces MATLAB's algorithm: per dimension, build the
(out x in) weight matrix exactly as MATLAB's ``contributions`` does and apply
it as a matrix product along that dimension.
"""

from __future__ import annotations

import math
from functools import lru_cache
from numbers import Integral, Real
from typing import Sequence

import torch

__all__ = ["imresize"]

# Keys' cubic convolution with a = -0.5 is supported on [-2, 2].
_KERNEL_WIDTH = 4.0


def _cubic(t: torch.Tensor) -> torch.Tensor:
    """Keys cubic kernel (a = -0.5), written as MATLAB's ``cubic``."""
    a = t.abs()
    a2, a3 = a * a, a * a * a
    inner = (1.5 * a3 - 2.5 * a2 + 1.0) * (a <= 1)
    outer = (-0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0) * ((a > 1) & (a <= 2))
    return inner + outer


@lru_cache(maxsize=64)
def _weight_matrix(in_len: int, out_len: int, scale: float, antialias: bool) -> torch.Tensor:
    """Dense resampling matrix of shape (out_len, in_len), float64, on the CPU.

    Row i holds the weights with which input samples contribute to output i.
    """
    width = _KERNEL_WIDTH
    stretch = scale < 1 and antialias
    if stretch:
        # Downscaling low-passes by widening the kernel by 1/scale.
        width = _KERNEL_WIDTH / scale

    x = torch.arange(1, out_len + 1, dtype=torch.float64)  # MATLAB is 1-based
    u = x / scale + 0.5 * (1 - 1 / scale)  # output centre in input coordinates
    left = torch.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)  # (out, taps)

    dist = u[:, None] - idx
    w = scale * _cubic(scale * dist) if stretch else _cubic(dist)
    w = w / w.sum(dim=1, keepdim=True)

    # Mirror out-of-range taps the way MATLAB does ("symmetric" padding: the
    # index sequence 1..n, n..1 repeats), then go 0-based.
    period = 2 * in_len
    idx = torch.remainder(idx.long() - 1, period)
    idx = torch.where(idx < in_len, idx, period - 1 - idx)

    # MATLAB drops taps whose weight is zero for every output; in a dense
    # matrix such taps add exact zeros, so accumulating everything is the same.
    mat = torch.zeros(out_len, in_len, dtype=torch.float64)
    mat.scatter_add_(1, idx, w)
    return mat


def _pair(value: object, name: str) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return (value, value)
    if len(value) != 2:
        raise ValueError(f"{name} must be a number or a pair (height, width), got {value!r}")
    return tuple(value)


def _plan(in_hw: tuple[int, int], scale: object, size: object):
    """Return [(out_len, scale)] for (height, width) from exactly one of scale/size."""
    if (scale is None) == (size is None):
        raise ValueError("pass exactly one of scale or size")
    if scale is not None:
        scales = _pair(scale, "scale")
        for s in scales:
            if isinstance(s, bool) or not isinstance(s, Real) or not math.isfinite(s) or s <= 0:
                raise ValueError(f"scale must be positive and finite, got {scale!r}")
        # Output length exactly as MATLAB computes it, in double precision.
        return [(math.ceil(n * float(s)), float(s)) for n, s in zip(in_hw, scales)]
    sizes = _pair(size, "size")
    if isinstance(size, Real) or not all(
        isinstance(n, Integral) and not isinstance(n, bool) and n > 0 for n in sizes
    ):
        raise ValueError(f"size must be a pair of positive ints (height, width), got {size!r}")
    return [(int(n_out), n_out / n_in) for n_out, n_in in zip(sizes, in_hw)]


def imresize(x: torch.Tensor, scale=None, *, size=None, antialias: bool = True) -> torch.Tensor:
    """Resize images with MATLAB's default bicubic ``imresize``.

    Args:
        x: float tensor (B, C, H, W), (C, H, W) or (H, W); any device.
        scale: factor, or pair (scale_h, scale_w); the output is
            ``ceil(H * scale_h) x ceil(W * scale_w)``.
        size: (H_out, W_out) instead of ``scale``; the factor per dimension is
            then out / in, as in MATLAB.
        antialias: widen the kernel when downscaling (MATLAB's default).

    Returns:
        A tensor of the same rank, dtype and device with the last two
        dimensions resized. float16/bfloat16 inputs are computed in float32.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if not 2 <= x.dim() <= 4:
        raise ValueError(f"x must have shape (H, W), (C, H, W) or (B, C, H, W), got {tuple(x.shape)}")
    in_hw = (x.shape[-2], x.shape[-1])
    if min(in_hw) < 1:
        raise ValueError(f"x must have non-empty height and width, got {tuple(x.shape)}")
    plan = _plan(in_hw, scale, size)

    compute = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    out = x.to(compute)
    # MATLAB resizes the dimension with the smallest factor first (stable sort,
    # so height first on ties). The passes commute mathematically; keeping
    # MATLAB's order keeps floating-point rounding closest to MATLAB's, and
    # when downscaling it shrinks the data before the second pass.
    for dim in sorted((0, 1), key=lambda d: plan[d][1]):
        out_len, s = plan[dim]
        mat = _weight_matrix(in_hw[dim], out_len, s, bool(antialias))
        mat = mat.to(device=x.device, dtype=compute)
        out = torch.matmul(mat, out) if dim == 0 else torch.matmul(out, mat.T)
    return out.to(x.dtype)
