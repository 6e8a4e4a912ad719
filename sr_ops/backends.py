"""Backend selection: `reference`, `cpu`, `cuda`, `triton`.

Priority: `use_backend(name)` (innermost wins) > the `SR_OPS_BACKEND` environment
variable > the fastest backend the op implements for the input's device
(CUDA tensors: cuda, then triton; CPU tensors: cpu), falling back to `reference`
with one warning when the compiled extension is missing.

Each entry of an op's BackendTable may declare what it can take (a `Kernel`: dtypes,
whether it is deterministic, per-input limits). Automatic selection runs the first
candidate with no reason against it; a forced backend with reasons raises one error that
lists every backend's reasons. Under `torch.use_deterministic_algorithms(True)` kernels that
accumulate with atomics are passed over (the reference on the same device runs instead,
with one warning per op).
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import os
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping

import torch

from sr_ops import _ext

BACKENDS = ("reference", "cpu", "cuda", "triton")

_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar("sr_ops_backend", default=None)
_warned_fallback = False
_warned_deterministic: set[str] = set()


@dataclass(frozen=True)
class Kernel:
    """One backend's implementation of a kernel and what it can take.

    dtypes: the dtypes it takes for its first tensor argument (None: all the op allows).
    deterministic: False when it accumulates with atomics, so that sums land in a varying
        order (skipped under torch.use_deterministic_algorithms(True)).
    limits: called with the kernel's arguments; returns why it cannot take them (e.g.
        "k=40 > 32"), or None.
    """

    fn: Callable
    dtypes: tuple[torch.dtype, ...] | None = None
    deterministic: bool = True
    limits: Callable[..., str | None] | None = None

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


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


def _unusable_reason(name: str) -> str:
    if name in ("cpu", "cuda"):
        if _ext.load() is None:
            return f"extension not built ({_ext.load_error()})"
        return "no CUDA GPU, or the extension was built without CUDA" if name == "cuda" else ""
    if name == "triton":
        return "needs triton and a CUDA GPU, or TRITON_INTERPRET=1 on the CPU"
    return ""


def reasons(name: str, kernel: Kernel | None, device: torch.device, args: tuple = ()) -> list[str]:
    """Why backend `name` cannot run `kernel` on these arguments (empty: it can)."""
    if not _usable(name):
        return [_unusable_reason(name) or "not available"]
    if not _device_ok(name, device):
        return [f"cannot take {device.type} tensors"]
    if kernel is None:
        return []
    why = []
    first = next((a for a in args if isinstance(a, torch.Tensor)), None)
    if kernel.dtypes is not None and first is not None and first.dtype not in kernel.dtypes:
        takes = ", ".join(str(d).removeprefix("torch.") for d in kernel.dtypes)
        why.append(f"{str(first.dtype).removeprefix('torch.')} not supported (takes {takes})")
    if not kernel.deterministic and torch.are_deterministic_algorithms_enabled():
        why.append("accumulates with atomics and deterministic algorithms are on")
    if kernel.limits is not None and args:
        limit = kernel.limits(*args)
        if limit:
            why.append(limit)
    return why


def _as_kernels(implemented: Iterable[str] | Mapping[str, Callable]) -> dict[str, Kernel | None]:
    if isinstance(implemented, Mapping):
        return {n: k if isinstance(k, Kernel) else None for n, k in implemented.items()}
    return {n: None for n in implemented}


def _report(op: str, kernels: dict, device: torch.device, args: tuple) -> str:
    parts = []
    for n in BACKENDS:
        if n in kernels:
            why = reasons(n, kernels[n], device, args)
            parts.append(f"{n}: {'; '.join(why)}" if why else f"{n}: can run")
    return ", ".join(parts)


def select(op: str, device: torch.device, implemented: Iterable[str] | Mapping[str, Callable],
           args: tuple = ()) -> str:
    """The backend that op `op` runs on for tensors on `device` (and, when given, these
    kernel arguments, against each entry's declared limits)."""
    global _warned_fallback
    kernels = _as_kernels(implemented)
    name = requested_backend()
    if name is not None:
        _check_name(name)
        if name not in kernels:
            raise NotImplementedError(f"sr_ops.{op} has no {name!r} backend; it has {list(kernels)}")
        if not _device_ok(name, device):
            raise RuntimeError(f"sr_ops backend {name!r} cannot run sr_ops.{op} on {device} tensors")
        if reasons(name, kernels[name], device, args):
            raise RuntimeError(f"sr_ops backend {name!r} cannot run sr_ops.{op} on these inputs; "
                               f"{_report(op, kernels, device, args)}")
        return name
    order = ("cuda", "triton") if device.type == "cuda" else ("cpu",)
    skipped_for_determinism = None
    for cand in order:
        if cand not in kernels:
            continue
        why = reasons(cand, kernels[cand], device, args)
        if not why:
            return cand
        if skipped_for_determinism is None and any("deterministic" in w for w in why):
            skipped_for_determinism = cand
    if skipped_for_determinism is not None and op not in _warned_deterministic:
        _warned_deterministic.add(op)
        warnings.warn(
            f"sr_ops.{op}: deterministic algorithms are on and the {skipped_for_determinism!r} kernel "
            "accumulates with atomics; running the pure-PyTorch reference instead",
            UserWarning,
            stacklevel=3,
        )
    elif device.type == "cpu" and "cpu" in kernels and not _usable("cpu") and not _warned_fallback:
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


def native(schema: str) -> Callable:
    """The extension's private kernel ``torch.ops.sr_ops.<schema>`` (its CPU or CUDA
    registration, by the tensors' device), looked up on first call: the extension may load
    after the op modules."""
    found: list = []

    def call(*args):
        if not found:
            found.append(getattr(torch.ops.sr_ops, schema))
        return found[0](*args)

    call.__name__ = schema
    return call


class BackendTable:
    """The implementations of one kernel, by backend name; calling it runs the chosen one.

    ``native="_<op>_fwd"`` fills the ``cpu`` and ``cuda`` entries not given otherwise with that
    private schema, called with the table's arguments as they are.

    ``values`` checks what only the data can tell (index ranges: the kernels read and write at
    those offsets). It runs on the table's arguments only before the backends not named in
    ``values_checked_by`` -- by default the C++ kernels (``cpu``, ``cuda``), which check values
    themselves (csrc/checks) -- so a call pays one reduction (on a GPU, one synchronisation), not two."""

    def __init__(self, op: str, native: str | None = None, values: Callable | None = None,
                 values_checked_by: Iterable[str] = ("cpu", "cuda"), **impls: Callable):
        self.op = op
        self.values_checked_by = frozenset(values_checked_by)
        if native is not None:
            kernel = globals()["native"](native)
            impls.setdefault("cpu", kernel)
            impls.setdefault("cuda", kernel)
        self.impls = impls
        self.values = values

    def __call__(self, device: torch.device, *args, **kwargs):
        name = select(self.op, device, self.impls, args)
        if self.values is not None and name not in self.values_checked_by:
            self.values(*args)
        return self.impls[name](*args, **kwargs)
