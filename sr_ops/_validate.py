"""Argument checks for the references, the public ops and the private (backward) ops.

One wording everywhere: ``<name> must <rule>, got <what was passed>``. One exception class
per kind of mistake, the classes the C++ checks raise too (csrc/check.h):

- ``TypeError``: not a tensor, a scalar of the wrong type (``gelu=1``, ``eps="a"``), a dtype
  of the wrong kind, dtypes that differ;
- ``ValueError``: shapes, sizes, values (``eps=-1``, ``eps=nan``), index ranges, devices that
  differ.

The checks read shapes only, so the fake kernels run them under ``torch.compile`` too;
the value checks (``index_range``) read data and are skipped there by their callers.
"""
from __future__ import annotations

import math
import numbers

import torch

__all__ = [
    "tensor", "same_dtype", "same_device", "shape", "channels", "eps", "boolean", "what",
    "positive_int", "int_pair", "choice", "patch_fits", "grid", "index_range", "shape_like",
]


def what(v) -> str:
    """How a message names a wrongly typed argument: a builtin scalar with its value
    ("int 1", "str 'a'"), anything else by its qualified type ("numpy.bool", "list")."""
    t = type(v)
    if t in (int, float, str, complex):
        return f"{t.__name__} {v!r}"
    if t.__module__ == "builtins":
        return t.__name__
    return f"{t.__module__}.{t.__qualname__}"

def _shape(t: torch.Tensor) -> tuple:
    return tuple(t.shape)


def tensor(x, name: str, *, dims: int | None = None, min_dims: int | None = None, doc: str = "",
           kind: str | None = "float"):
    """x is a tensor (of floating point, integer or any ``kind``) with ``dims`` dims (or at
    least ``min_dims``); ``doc`` names them, e.g. "(B, C, H, W)"."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if kind == "float" and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if kind == "int" and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise TypeError(f"{name} must be an integer tensor, got {x.dtype}")
    doc = f" {doc}" if doc else ""
    if dims is not None and x.dim() != dims:
        raise ValueError(f"{name} must have {dims} dims{doc}, got shape {_shape(x)}")
    if min_dims is not None and x.dim() < min_dims:
        raise ValueError(f"{name} must have at least {min_dims} dims{doc}, got shape {_shape(x)}")
    return x


def same_dtype(**named: torch.Tensor) -> torch.dtype:
    """All the named tensors have the first one's dtype (the op computes in it; the public
    function promotes before calling the op). Names the first pair that differs."""
    (first, like), *rest = named.items()
    for name, t in rest:
        if t.dtype != like.dtype:
            raise TypeError(f"{first} and {name} must share a dtype, got {like.dtype} and {t.dtype}")
    return like.dtype


def same_device(t: torch.Tensor, name: str, like: torch.Tensor, like_name: str) -> None:
    if t.device != like.device:
        raise ValueError(f"{name} must be on {like_name}'s device {like.device}, got {t.device}")


def shape(t: torch.Tensor, name: str, expected, doc: str = "") -> None:
    """t's shape is ``expected`` (a tuple); ``doc`` spells it in symbols, e.g. "(C,)"."""
    if _shape(t) != tuple(expected):
        doc = f"{doc} = " if doc else ""
        raise ValueError(f"{name} must have shape {doc}{tuple(expected)}, got {_shape(t)}")


def channels(x: torch.Tensor, name: str, op: str, dim: int = 1) -> int:
    """At least one channel in dim ``dim``; returns their count."""
    C = x.shape[dim]
    if C == 0:
        raise ValueError(f"{name} must have at least one channel ({op} needs C >= 1), got shape {_shape(x)}")
    return C


def eps(v, name: str = "eps") -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a finite non-negative number, got {what(v)}")
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite non-negative number, got {v!r}")
    return v


def boolean(v, name: str) -> bool:
    """A Python bool (an int or numpy.bool would pass an ``if`` but not the schema's bool)."""
    if not isinstance(v, bool):
        raise TypeError(f"{name} must be a bool, got {what(v)}")
    return v


def positive_int(v, name: str) -> int:
    if isinstance(v, torch.SymInt):
        return v
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int, got {what(v)}")
    if v <= 0:
        raise ValueError(f"{name} must be positive, got {v}")
    return v


def int_pair(v, name: str, doc: str = "(H, W)") -> tuple[int, int]:
    if not isinstance(v, (tuple, list)):  # torch.Size is a tuple
        raise TypeError(f"{name} must be a pair {doc} of positive ints, got {what(v)}")
    if len(v) != 2:
        raise ValueError(f"{name} must be a pair {doc} of positive ints, got {v!r}")
    return positive_int(v[0], name), positive_int(v[1], name)


def choice(v, name: str, choices: tuple, why: str = ""):
    allowed = " or ".join(repr(c) for c in choices)
    why = f" ({why})" if why else ""
    if not any(type(v) is type(c) for c in choices):
        raise TypeError(f"{name} must be {allowed}{why}, got {what(v)}")
    if v not in choices:
        raise ValueError(f"{name} must be {allowed}{why}, got {v!r}")
    return v


def patch_fits(patch_size: int, hw, what: str, name: str = "patch_size") -> None:
    """A patch_size x patch_size window fits in a map of size hw = (H, W)."""
    H, W = int(hw[0]), int(hw[1])
    if patch_size > min(H, W):
        raise ValueError(f"{name} must be at most {what}'s height and width {(H, W)}, got {patch_size}")


def grid(n: int, patch_size: int, stride: int) -> int:
    """Patch positions along an axis of length n: patches of patch_size, stride apart, no
    padding (n >= patch_size)."""
    return (n - patch_size) // stride + 1


def index_range(idx: torch.Tensor, n: int, name: str, what: str = "") -> None:
    """idx values lie in [0, n): they are offsets a kernel reads or writes at. One reduction;
    callers skip it where the data is not there (fake tensors)."""
    if idx.numel() == 0:
        return
    lo, hi = torch.aminmax(idx)
    lo, hi = int(lo), int(hi)
    if lo < 0 or hi >= n:
        what = f" ({what})" if what else ""
        raise ValueError(f"{name} values must lie in [0, {n}){what}, got [{lo}, {hi}]")


def shape_like(t: torch.Tensor, name: str, expected, like_name: str) -> None:
    """t has the shape ``expected`` of another tensor or output (like_name), e.g. a
    backward's incoming gradient that of the forward's output."""
    if _shape(t) != tuple(expected):
        raise ValueError(f"{name} must have {like_name}'s shape {tuple(expected)}, got {_shape(t)}")
