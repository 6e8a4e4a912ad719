"""Rows of the item stages of `make gpu-check` (sr_ops.bench.gpu_stages): the journal each
stage appends to, the runner that applies the deadline and the restart rule, and one row's
measurement (time, peak memory, error against the pure-PyTorch output)."""
from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback

import torch

RESTART = 3  # exit status: the CUDA context is gone, start a fresh process to go on


def planted(stage: str) -> None:
    """GPU_CHECK_PLANT=stage[,stage]: raise in that stage (to check that failures show)."""
    if stage in os.environ.get("GPU_CHECK_PLANT", "").split(","):
        raise RuntimeError(f"planted failure in stage {stage!r} (GPU_CHECK_PLANT)")


def planted_row(key: str) -> None:
    """GPU_CHECK_PLANT=row:<text>: raise in every row whose key contains <text>."""
    for token in os.environ.get("GPU_CHECK_PLANT", "").split(","):
        if token.startswith("row:") and token[4:] in key:
            raise RuntimeError(f"planted failure in row {key!r} (GPU_CHECK_PLANT)")


# --- the JSONL protocol -----------------------------------------------------------------

class Journal:
    def __init__(self, path: str):
        self.path = path
        self.done: set[str] = set()
        self.crashed: list[str] = []
        started = []
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    try:
                        ev = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if "start" in ev:
                        started.append(ev["start"])
                    elif "row" in ev:
                        self.done.add(ev["row"]["key"])
        self.crashed = [k for k in dict.fromkeys(started) if k not in self.done]
        self.f = open(path, "a")

    def write(self, ev: dict) -> None:
        self.f.write(json.dumps(ev) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def plan(self, keys: list[str]) -> None:
        self.write({"plan": keys})

    def start(self, key: str) -> None:
        self.write({"start": key})

    def row(self, row: dict) -> None:
        self.done.add(row["key"])
        self.write({"row": row})


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".strip()[:2000]


def cuda_alive() -> bool:
    if not torch.cuda.is_available():
        return True
    try:
        torch.cuda.synchronize()
        torch.zeros(1, device="cuda").add_(1).item()
        return True
    except Exception:  # noqa: BLE001 (any error here means the context is gone)
        return False


def _tensors(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return []


def rel_err(out, ref) -> float | None:
    """||out - ref|| / ||ref|| over every tensor of the outputs, in float64 (on their device)."""
    a, b = _tensors(out), _tensors(ref)
    if not a or len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        return None
    num = sum(float((x.detach().double() - y.detach().to(x.device).double()).pow(2).sum()) for x, y in zip(a, b))
    den = sum(float(y.detach().double().pow(2).sum()) for y in b)
    return (num / den) ** 0.5 if den else num ** 0.5


def measure(call, device, cfg, ref=None, check=True) -> dict:
    """One call for the output (and the first-call costs: JIT, lazy init), one for the peak
    memory, then the timed calls; with `ref`, the output's relative error against it."""
    from sr_ops.bench.memory import peak_bytes
    from sr_ops.bench.timing import device_median_ms

    if cfg.get("single"):  # dry run: one call gives the output, the peak and the (wall) time
        held = []

        def once():
            t0 = time.perf_counter()
            held.append(call())
            held.append((time.perf_counter() - t0) * 1e3)
            return held[0]
        peak = peak_bytes(once, device, collect=False)
        ms = held[1]
        return {"ms": ms, "min_ms": ms, "n": 1, "peak_mb": None if peak is None else peak / 2**20,
                "rel_err": rel_err(held[0], ref) if ref is not None and check else None}
    out = call()
    err = rel_err(out, ref) if ref is not None and check else None
    del out
    peak = peak_bytes(call, device)
    t = device_median_ms(call, device, repeats=cfg["repeats"], warmup=max(cfg["warmup"] - 1, 0),
                         max_seconds=cfg["max_seconds"], flush_bytes=256 * 2**20 if device.type == "cuda" else 0)
    return {"ms": t["ms"], "min_ms": t["min_ms"], "n": t["n"], "peak_mb": None if peak is None else peak / 2**20,
            "rel_err": err}


class Runner:
    """Runs the rows of an item stage with the journal, the deadline and the restart rule."""

    def __init__(self, stage: str, work: str, deadline: float):
        self.stage, self.deadline = stage, deadline
        self.journal = Journal(os.path.join(work, f"{stage}.jsonl"))
        self.failed = 0

    def plan(self, keys):
        self.journal.plan(keys)

    def run(self, key: str, base: dict, fn, na: str | None = None) -> dict | None:
        """fn() -> dict of results; returns the row written (None when already done).
        `na`: the reason this row is not run at all (status "n/a", not a failure)."""
        j = self.journal
        if key in j.done:
            return None
        row = dict(base, key=key, stage=self.stage)
        if na:
            print(f"  {key}: not run: {na}", flush=True)
            row.update(status="n/a", error=na)
        elif key in j.crashed:
            row.update(status="failed", error="the stage process died or hung in this row (see the log)")
        elif time.time() > self.deadline:
            row.update(status="skipped", error="time box: not started")
        else:
            j.start(key)
            print(f"  {key} ...", flush=True)
            try:
                planted_row(key)
                row.update(fn(), status="ok")
            except Exception as e:  # noqa: BLE001 (every failure becomes a row)
                traceback.print_exc()
                row.update(status="failed", error=_err(e))
        if row["status"] == "failed":
            self.failed += 1
        j.row(row)
        if row["status"] == "ok":
            print(f"    {row.get('ms', 0):.3f} ms, peak {row.get('peak_mb')} MB", flush=True)
        if torch.cuda.is_available():  # free this row's memory (the dry run skips it: a gc is 0.3 s there)
            gc.collect()
            torch.cuda.empty_cache()
        if row["status"] == "failed" and not cuda_alive():
            print("CUDA context lost: exiting for a restart", flush=True)
            sys.exit(RESTART)
        return row
