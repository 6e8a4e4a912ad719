"""Peak memory of one call, on the CPU (resident set) or a CUDA device (allocator).

CPU: freed memory that glibc keeps in its heap is reused without growing the resident
set, which hides a call's allocations from an RSS count (a model run once before leaves
its activations' worth of free heap behind). So the mmap threshold is pinned low (large
tensors are mmapped and returned on free) and the heap is trimmed (``malloc_trim``)
before every measurement. The kernel's peak-RSS counter (VmHWM) is reset before the
call through /proc/self/clear_refs; the result is the peak minus the resident set just
before the call: everything the call allocated and touched, its output included.

``model_peak_bytes`` adds a count that no allocator state can hide: the peak of live
tensor bytes, from the profiler's record of every CPU allocation and free. ``tiled``
sizes its tiles with it.
"""
from __future__ import annotations

import ctypes
import gc
import os
import sys
from contextlib import contextmanager
from typing import Callable

import torch

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _pin_mmap_threshold() -> None:
    # Again before every measurement: sr_ops.cpu_memory.keep_freed_memory (which the bench
    # applies for its timings) raises both thresholds, and would hide the call's blocks.
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 64 * 1024)
        libc.mallopt(_M_TRIM_THRESHOLD, 128 * 1024)  # glibc's static default
    except (OSError, AttributeError):
        pass


def _restore_kept() -> None:
    from sr_ops import cpu_memory

    kept = cpu_memory.kept_threshold()
    if kept is not None:
        cpu_memory.keep_freed_memory(kept)


def _trim_heap() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to give back this way
        pass


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
    _trim_heap()
    before = _status_kib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        out = fn()
        peak = _status_kib("VmHWM") - before
        del out
    finally:
        _restore_kept()
    return max(peak, 0) * 1024


@contextmanager
def _quiet_fd2():
    """Kineto prints a line on stderr at each profiler start and stop (from C++)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _profiler_calls():
    """(start, stop -> events) of torch's CPU memory profiler, or None where this torch lacks
    them. The low-level calls behind ``torch.profiler.profile``: the wrapper's first use
    costs ~140 MB of transient RSS, which would swamp the budgets measured here."""
    try:
        import torch.autograd as ag
        from torch._C._profiler import _ExperimentalConfig
        from torch.autograd import ProfilerActivity, ProfilerConfig, ProfilerState

        cfg = ProfilerConfig(ProfilerState.KINETO, False, True, False, False, False, _ExperimentalConfig())
        activities = {ProfilerActivity.CPU}
    except (ImportError, AttributeError, TypeError):
        return None

    def start() -> None:
        ag._prepare_profiler(cfg, activities)
        ag._enable_profiler(cfg, activities)

    def stop():
        return ag._disable_profiler().events()

    return start, stop


def tensor_peak_bytes(fn: Callable[[], object]) -> tuple[int | None, object]:
    """(peak of live CPU tensor bytes during `fn()` over those live before it, fn's result);
    the peak is None where the profiler is not available.

    Counts every allocation through torch's CPU allocator (outputs, temporaries, the
    kernels' at::empty workspaces) as the profiler records them, whatever the heap holds."""
    calls = _profiler_calls()
    if calls is None or torch.autograd._profiler_enabled():  # one profiler at a time
        return None, fn()
    start, stop = calls
    with _quiet_fd2():
        start()
    try:
        out = fn()
    finally:
        with _quiet_fd2():
            events = stop()
    cpu = torch.autograd.DeviceType.CPU
    steps = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]" and e.device_type() == cpu)
    live = peak = 0
    for _, nbytes in steps:
        live += nbytes
        peak = max(peak, live)
    return peak, out


def model_peak_bytes(fn: Callable[[], object], device: torch.device | str = "cpu") -> int | None:
    """Extra bytes at the peak of `fn()`: the CUDA allocator's peak on a GPU; on the CPU the
    larger of the resident-set peak (sees non-tensor memory) and the live-tensor peak
    (sees memory the heap would have reused). None if neither is measurable."""
    device = torch.device(device)
    if device.type == "cuda":
        return peak_bytes(fn, device)
    box = []
    rss = peak_bytes(lambda: box.append(tensor_peak_bytes(fn)))
    tensors = box[0][0]
    box.clear()
    if rss is None or tensors is None:
        return rss if tensors is None else tensors
    return max(rss, tensors)
