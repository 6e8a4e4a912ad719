"""Runs the benchmark cases and formats the comparison table."""
from __future__ import annotations

import platform
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import sr_ops
from sr_ops.bench.cases import Case, all_cases
from sr_ops.bench.memory import peak_bytes
from sr_ops.bench.timing import interleaved_median_seconds, median_seconds


@dataclass
class Row:
    op: str
    case: str
    impl: str
    backend: str
    ms: float
    peak_mb: float | None
    speedup: float | None = None  # pytorch time / this time
    mem_ratio: float | None = None  # pytorch peak / this peak
    gflops: float | None = None  # for cases that count their useful work
    threads: int | None = None  # CPU threads (torch.set_num_threads) when runs vary them
    mm_fraction: float | None = None  # gflops / torch.mm float32 GFLOP/s in the same run


def _backend_of(impl: str, device: torch.device) -> str:
    if impl == "faiss":
        return "faiss-cpu"
    if impl == "sr_ops":
        from sr_ops.backends import select

        return select("bench", device, sr_ops.available_backends())
    return "eager" if impl == "pytorch" else "inductor"


def run_case(case: Case, device: torch.device, repeats: int, with_compile: bool, log=print) -> list[Row]:
    inputs = case.make(device)
    impls = dict(case.impls)
    for name, reason in case.extra.get("skipped", {}).items():
        log(f"  {case.op}: {case.label}: {name} skipped: {reason}")
    if with_compile and case.compile_impl is not None:
        impls["torch.compile"] = case.compile_impl
    if with_compile and case.compile_fused_impl is not None:
        impls["compile(sr_ops)"] = case.compile_fused_impl
    rows = []
    calls = {name: (lambda fn=fn: fn(inputs)) for name, fn in impls.items()}
    # the columns are compared with each other: timed in interleaved rounds
    medians = interleaved_median_seconds(calls, device, repeats=repeats)
    for name, call in calls.items():
        seconds = medians[name]
        peak = peak_bytes(call, device)
        flops = case.extra.get("flops")
        rows.append(Row(case.op, case.label, name, _backend_of(name, device), seconds * 1e3,
                        None if peak is None else peak / 2**20,
                        gflops=None if flops is None else flops / seconds / 1e9))
    base = next((r for r in rows if r.impl == "pytorch"), None)
    for r in rows:
        if base is not None:
            r.speedup = base.ms / r.ms
            if base.peak_mb is not None and r.peak_mb:
                r.mem_ratio = base.peak_mb / r.peak_mb
    return rows


def run(quick: bool = True, ops: list[str] | None = None, device: str = "cpu",
        repeats: int | None = None, with_compile: bool = False, log=print,
        threads: list[int] | None = None) -> list[Row]:
    """Every selected case, once per entry of `threads` (CPU: torch.set_num_threads) when it
    is given; then each row that counts its work also gets its fraction of torch.mm float32
    GFLOP/s measured in the same run at the same thread count."""
    dev = torch.device(device)
    rows: list[Row] = []
    saved = torch.get_num_threads()
    try:
        for n in threads or [None]:
            if n is not None:
                torch.set_num_threads(n)
                log(f"  {n} thread{'s' * (n > 1)}:")
            part: list[Row] = []
            for case in all_cases():
                if (quick and not case.quick) or (ops and case.op not in ops):
                    continue
                log(f"  {case.op}: {case.label} ...")
                part += run_case(case, dev, repeats or (3 if quick else 7), with_compile, log)
            if any(r.gflops for r in part):
                mm = mm_gflops(device)
                for r in part:
                    r.mm_fraction = None if r.gflops is None else r.gflops / mm
            for r in part:
                r.threads = n
            rows += part
    finally:
        torch.set_num_threads(saved)
    return rows


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def mm_gflops(device: str = "cpu", n: int = 2048) -> float:
    """float32 torch.mm rate on this machine: the yardstick for the kernels' GFLOP/s."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    return 2 * n**3 / median_seconds(lambda: a @ b, device, repeats=5) / 1e9


def git_commit() -> str | None:
    """The source tree's commit (with "-dirty" when it has uncommitted changes), or None
    when sr_ops does not run from a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        run = lambda *a: subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True,  # noqa: E731
                                        timeout=10)
        head = run("rev-parse", "HEAD")
        if head.returncode != 0:
            return None
        dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine() -> dict:
    return {
        "commit": git_commit(),
        "machine": _cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "backends": sr_ops.available_backends(),
    }


def format_table(rows: list[Row]) -> str:
    head = ["op", "case", "impl", "backend", "time ms", "peak MB", "speedup", "less memory", "GFLOP/s"]
    with_threads = any(r.threads is not None for r in rows)
    with_mm = any(r.mm_fraction is not None for r in rows)
    head += ["threads"] * with_threads + ["of torch.mm"] * with_mm
    body = []
    for r in rows:
        body.append([
            r.op, r.case, r.impl, r.backend, f"{r.ms:.2f}",
            "n/a" if r.peak_mb is None else f"{r.peak_mb:.1f}",
            "" if r.speedup is None or r.impl == "pytorch" else f"{r.speedup:.2f}x",
            "" if r.mem_ratio is None or r.impl == "pytorch" else f"{r.mem_ratio:.2f}x",
            "" if r.gflops is None else f"{r.gflops:.1f}",
        ] + [str(r.threads or "")] * with_threads
          + ["" if r.mm_fraction is None else f"{r.mm_fraction:.0%}"] * with_mm)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    fmt = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    lines = [fmt(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(lines + [fmt(b) for b in body])


FOUR = ("pytorch", "sr_ops", "torch.compile", "compile(sr_ops)")


def format_four(rows: list[Row]) -> str:
    """Cases timed all four ways (eager, sr_ops, compile of each): ms per way, the fastest,
    and sr_ops / compile(sr_ops) against compile(eager). Empty when no case has all four."""
    groups: dict[tuple, dict[str, Row]] = {}
    for r in rows:
        groups.setdefault((r.op, r.case, r.threads), {})[r.impl] = r
    head = "| op | case | threads | eager ms | sr_ops ms | compile(eager) ms | compile(sr_ops) ms | " \
           "sr_ops vs compile(eager) | compile(sr_ops) vs compile(eager) | fastest |"
    lines = []
    for (op, case, threads), by in groups.items():
        if not all(k in by for k in FOUR):
            continue
        ms = [by[k].ms for k in FOUR]
        base = by["torch.compile"].ms
        best = ("eager", "sr_ops", "compile(eager)", "compile(sr_ops)")[ms.index(min(ms))]
        lines.append(f"| {op} | {case} | {threads or ''} | " + " | ".join(f"{v:.2f}" for v in ms)
                     + f" | {base / ms[1]:.2f}x | {base / ms[3]:.2f}x | {best} |")
    if not lines:
        return ""
    return "\n".join([head, "|" + "---|" * 10] + lines)


def as_dicts(rows: list[Row]) -> list[dict]:
    return [asdict(r) for r in rows]
