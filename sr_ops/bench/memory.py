"""Peak memory of one call, on the CPU (resident set) or a CUDA device (allocator).

CPU: glibc's dynamic mmap threshold would let freed buffers linger in the heap and
hide later allocations from the resident-set count, so the threshold is pinned low
(large tensors are then mmapped and returned on free). The kernel's peak-RSS counter
(VmHWM) is reset before the call through /proc/self/clear_refs; the result is the
peak minus the resident set just before the call: everything the call allocated and
touched, its output included.
"""
from __future__ import annotations

import ctypes
import gc
import os
from typing import Callable

import torch

_M_MMAP_THRESHOLD = -3
_pinned = False


def _pin_mmap_threshold() -> None:
    global _pinned
    if not _pinned:
        try:
            ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 64 * 1024)
        except OSError:
            pass
        _pinned = True


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def cpu_peak_supported() -> bool:
    return os.path.exists("/proc/self/clear_refs") and os.access("/proc/self/clear_refs", os.W_OK)


# Pinned at import, before any timing run: allocations made under the dynamic
# threshold would otherwise sit in the heap and be reused unseen by later measurements.
_pin_mmap_threshold()


def peak_bytes(fn: Callable[[], object], device: torch.device | str = "cpu", collect: bool = True) -> int | None:
    """Extra bytes at the peak of `fn()` over what was live before it (None if unmeasurable).
    `collect=False` skips the garbage collection first (0.3 s in a process holding triton)."""
    device = torch.device(device)
    if collect:
        gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        del out
        return peak
    if not cpu_peak_supported():
        return None
    _pin_mmap_threshold()
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    out = fn()
    peak = _status_kib("VmHWM") - before
    del out
    return max(peak, 0) * 1024
