"""Backend selection: `reference`, `cpu`, `cuda`, `triton`.

Priority: `use_backend(name)` (innermost wins) > the `SR_OPS_BACKEND` environment
variable > the fastest backend the op implements for the input's device
(CUDA tensors: cuda, then triton; CPU tensors: cpu), falling back to `reference`
with one warning when the compiled extension is missing.
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import os
import warnings
from typing import Callable, Iterable, Iterator

import torch

from sr_ops import _ext

BACKENDS = ("reference", "cpu", "cuda", "triton")

_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar("sr_ops_backend", default=None)
_warned_fallback = False


def triton_interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _usable(name: str) -> bool:
    if name == "reference":
        return True
    if name == "cpu":
        return _ext.load() is not None
    if name == "cuda":
        return _ext.with_cuda() and torch.cuda.is_available()
    if name == "triton":
        if importlib.util.find_spec("triton") is None:
            return False
        return torch.cuda.is_available() or triton_interpret()
    return False


def available_backends() -> list[str]:
    """Names of the backends usable on this machine, in `BACKENDS` order."""
    return [b for b in BACKENDS if _usable(b)]


def _check_name(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown sr_ops backend {name!r}; choose one of {list(BACKENDS)}")
    if not _usable(name):
        why = ""
        if name == "cpu" or name == "cuda":
            why = f" (extension: {_ext.load_error() or 'built without CUDA'})"
        elif name == "triton":
            why = " (needs triton and a CUDA GPU, or TRITON_INTERPRET=1 on CPU)"
        raise RuntimeError(
            f"sr_ops backend {name!r} is not available{why}; available: {available_backends()}"
        )
    return name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Force every sr_ops op inside the block onto backend `name`."""
    token = _forced.set(_check_name(name))
    try:
        yield name
    finally:
        _forced.reset(token)


def requested_backend() -> str | None:
    """The forced backend (context manager, then SR_OPS_BACKEND), or None for automatic."""
    name = _forced.get()
    if name is None:
        name = os.environ.get("SR_OPS_BACKEND") or None
    return name


def _device_ok(name: str, device: torch.device) -> bool:
    if name == "cpu":
        return device.type == "cpu"
    if name == "cuda":
        return device.type == "cuda"
    if name == "triton":
        return device.type == "cuda" or (device.type == "cpu" and triton_interpret())
    return True


def select(op: str, device: torch.device, implemented: Iterable[str]) -> str:
    """The backend that op `op` runs on for tensors on `device`."""
    global _warned_fallback
    implemented = tuple(implemented)
    name = requested_backend()
    if name is not None:
        _check_name(name)
        if name not in implemented:
            raise NotImplementedError(f"sr_ops.{op} has no {name!r} backend; it has {list(implemented)}")
        if not _device_ok(name, device):
            raise RuntimeError(f"sr_ops backend {name!r} cannot run sr_ops.{op} on {device} tensors")
        return name
    order = ("cuda", "triton") if device.type == "cuda" else ("cpu",)
    for cand in order:
        if cand in implemented and _usable(cand):
            return cand
    if device.type == "cpu" and "cpu" in implemented and not _warned_fallback:
        _warned_fallback = True
        warnings.warn(
            f"sr_ops: compiled extension not available ({_ext.load_error()}); "
            "falling back to the slow pure-PyTorch reference backend",
            RuntimeWarning,
            stacklevel=3,
        )
    return "reference"


def lazy(module: str, name: str) -> Callable:
    """An implementation imported on first call (Triton kernels: importing triton is slow
    and optional, and TRITON_INTERPRET must be set before it happens)."""

    def call(*args, **kwargs):
        import importlib

        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = name
    return call


class BackendTable:
    """The implementations of one kernel, by backend name; calling it runs the chosen one."""

    def __init__(self, op: str, **impls: Callable):
        self.op = op
        self.impls = impls

    def __call__(self, device: torch.device, *args, **kwargs):
        return self.impls[select(self.op, device, self.impls)](*args, **kwargs)
