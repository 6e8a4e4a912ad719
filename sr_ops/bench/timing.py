"""Wall time of callables: warm up, then the median of timed repeats -- of one callable, or of
several interleaved round by round so that they share the machine's drift."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def median_seconds(fn: Callable[[], object], device: torch.device | str = "cpu",
                   repeats: int = 5, warmup: int = 1, max_seconds: float = 10.0) -> float:
    device = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times: list[float] = []
    budget_end = time.perf_counter() + max_seconds
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() > budget_end:
            break
    return statistics.median(times)


def interleaved_median_seconds(fns: dict[str, Callable[[], object]], device: torch.device | str = "cpu",
                               repeats: int = 5, warmup: int = 1, max_seconds: float = 10.0) -> dict[str, float]:
    """The median seconds of each callable, timed in rounds that call every one once.

    On a shared VM the speed drifts by tens of percent over seconds; timing one callable's
    repeats after another's puts that drift between them. Round-robin rounds, each starting
    one place further along (so no callable always runs first, straight after a sibling that
    left the caches cold or warm), expose all of them to the same drift. Stops after
    ``max_seconds`` per callable of timed rounds (at least one round)."""
    device = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    sync()
    times: dict[str, list[float]] = {n: [] for n in names}
    budget_end = time.perf_counter() + max_seconds * len(names)
    for r in range(repeats):
        for i in range(len(names)):
            name = names[(r + i) % len(names)]
            t0 = time.perf_counter()
            fns[name]()
            sync()
            times[name].append(time.perf_counter() - t0)
        if time.perf_counter() > budget_end:
            break
    return {n: statistics.median(t) for n, t in times.items()}


def device_median_ms(fn: Callable[[], object], device: torch.device | str = "cpu", repeats: int = 50,
                     warmup: int = 3, max_seconds: float = 1.0, flush_bytes: int = 256 * 2**20) -> dict:
    """Median milliseconds of `fn()` after `warmup` calls: on CUDA from events around each
    call, with the L2 cache flushed before it (a `flush_bytes` buffer zeroed, as
    triton.testing.do_bench does) so repeats do not time the cache; elsewhere wall time.
    Stops after `max_seconds` of timed calls (at least one). Returns the median, the
    minimum and the number of timed calls."""
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    times: list[float] = []
    end = time.perf_counter() + max_seconds
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        cache = torch.empty(flush_bytes, dtype=torch.int8, device=device) if flush_bytes else None
        for _ in range(repeats):
            if cache is not None:
                cache.zero_()
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
            if time.perf_counter() > end:
                break
        del cache
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
            if time.perf_counter() > end:
                break
    return {"ms": statistics.median(times), "min_ms": min(times), "n": len(times)}
