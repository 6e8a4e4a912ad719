"""Wall time of a callable: warm up, then the median of timed repeats."""
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
