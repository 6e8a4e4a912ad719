"""Keep freed CPU memory in the process (glibc malloc), so large tensors stop page-faulting.

PyTorch's CPU tensors come from ``malloc``. glibc serves a block above its mmap threshold
(dynamic, at most 32 MiB) with a fresh ``mmap`` and unmaps it on free, and it returns the
heap's free top to the OS past its trim threshold. An eager SR model allocates several
frame-sized maps per layer, so every call faults in those pages again: on the 2-core
benchmark VM one 4 KiB fault costs ~4 µs, and RT4KSR x2 on a 1280x720 frame took ~40,000
faults per call, about a third of its CPU time. ``torch.compile`` plans and reuses its
buffers, which hides most of this; eager PyTorch and sr_ops's eager ops do not.

``keep_freed_memory()`` raises both thresholds, so freed blocks are reused instead: the
process keeps its high-water mark of memory rather than handing it back between calls.
The same setting from the shell, before Python starts::

    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 python ...

(or an allocator such as jemalloc or tcmalloc through ``LD_PRELOAD``). ``sr-ops bench``
applies it to every column alike unless ``--system-malloc`` is given.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

__all__ = ["keep_freed_memory", "kept_threshold", "release_freed_memory"]

# <malloc.h>
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_kept: int | None = None  # what keep_freed_memory last set (glibc cannot be asked)


def kept_threshold() -> int | None:
    """The threshold ``keep_freed_memory`` set in this process, or None. The RSS peak
    measurement (sr_ops/bench/memory.py) lowers the thresholds while it measures and
    puts this one back after."""
    return _kept


def keep_freed_memory(threshold_bytes: int = 1 << 30) -> bool:
    """Ask glibc to serve and keep blocks up to ``threshold_bytes`` from its heap.

    Process-wide and not undone: call it once, early, in a process whose memory should
    stay at its peak between calls (a server or a batch job, not a short script next to
    other memory-hungry programs). Returns True when glibc accepted both settings, False
    on other C libraries and platforms (nothing is changed there).
    """
    if not isinstance(threshold_bytes, int) or isinstance(threshold_bytes, bool) or threshold_bytes < 1:
        raise ValueError(f"threshold_bytes must be a positive int, got {threshold_bytes!r}")
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    global _kept
    value = min(threshold_bytes, 2**31 - 1)  # mallopt takes an int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, value)) and bool(mallopt(_M_TRIM_THRESHOLD, value))
    if ok:
        _kept = value
    return ok


def release_freed_memory() -> None:
    """Undo ``keep_freed_memory``: glibc's static default thresholds (128 KiB each; its
    dynamic adjustment stays off once set) and the free heap handed back now. What
    ``sr-ops bench`` does when it returns, so an in-process caller (a test) gets its
    allocator back."""
    global _kept
    if _kept is None:
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
    libc.mallopt(_M_TRIM_THRESHOLD, 128 * 1024)
    libc.malloc_trim(0)
    _kept = None
