"""Compile every Triton kernel with the real compiler for fixed GPU targets, no GPU needed.

The test suite runs the Triton kernels in Triton's CPU interpreter, which accepts code the
real compiler rejects (a plain module global read in a kernel, for one). Here each case of
compile_cases calls an op's Triton wrapper with CPU tensors while

* the active Triton driver is a stand-in that reports a fixed GPUTarget (current device,
  current stream 0), so the NVIDIA backend compiles for it without CUDA, and
* JITFunction.run, which every `kernel[grid](...)` launch goes through, is called with
  warmup=True: Triton binds and specialises the arguments and compiles down to a cubin
  (ptxas included) but launches nothing,

so every kernel is compiled with the constexprs, dtypes and argument specialisations the
ops really use. A failed compile is recorded with the compiler's message and the wrapper
goes on to its next launch. Each arch runs in a subprocess with TRITON_INTERPRET unset (the
tests set it, and it must be unset before triton is imported) and a fresh TRITON_CACHE_DIR
(a cache hit would skip the compiler's checks).

    python -m sr_ops.triton.compile_check --arch 80 90
    python -m sr_ops.triton.compile_check --arch 90 --report docs/gpu-kernels.md

Resources (registers, spills, stack) come from the ptxas -v log Triton already produces;
shared memory and num_warps from the compiled kernel's metadata; instruction facts (tensor-core
instructions, load widths, float atomics, 64-bit divisions) from its PTX (sr_ops.bench.ptx_facts).
"""
from __future__ import annotations

import argparse
import contextlib
import fnmatch
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from sr_ops.bench import ptx_facts
from sr_ops.triton.compile_cases import CASES

ARCHS = (80, 90)
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Env vars that would hide what the check looks for: the interpreter, and Triton's escape
# hatch for plain globals.
_HIDING = ("TRITON_INTERPRET", "TRITON_ALLOW_NON_CONSTEXPR_GLOBALS")


class _TargetDriver:
    """What JITFunction.run and the NVIDIA compiler ask of the active driver, for a fixed
    target. The device number is the arch, so each arch gets its own binder and kernel
    cache inside the process (Triton keys both by device)."""

    def __init__(self, arch: int):
        from triton.backends.compiler import GPUTarget

        self.target = GPUTarget("cuda", arch, 32)

    def get_current_target(self):
        return self.target

    def get_current_device(self):
        return self.target.arch

    def get_current_stream(self, device=None):
        return 0


_PTXAS = (("regs", r"Used (\d+) registers"), ("stack", r"(\d+) bytes stack frame"),
          ("spill_stores", r"(\d+) bytes spill stores"), ("spill_loads", r"(\d+) bytes spill loads"))


def _resources(kernel, ptxas_log: str, seen: dict) -> dict:
    md = kernel.metadata
    if md.hash not in seen:  # a kernel-cache hit within the process prints no ptxas log
        res = {k: int(m.group(1)) if (m := re.search(p, ptxas_log)) else None for k, p in _PTXAS}
        seen[md.hash] = dict(res, hash=md.hash, num_warps=md.num_warps, shared=md.shared,
                             **ptx_facts.facts(kernel.asm.get("ptx", "")))
    return seen[md.hash]


def _message(err: Exception, limit: int = 4000) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    return text if len(text) <= limit else text[:limit // 2] + "\n...\n" + text[-limit // 2:]


@contextlib.contextmanager
def compile_only(arch: int):
    """Inside the block, Triton launches compile for sm_<arch> and append one record each
    ({"kernel", "ok", "error", resources}) to the yielded list; nothing runs."""
    from triton import knobs
    from triton.runtime.driver import driver
    from triton.runtime.jit import JITFunction

    if not hasattr(JITFunction, "run") or os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise RuntimeError("compile_only needs the real Triton compiler: "
                           "unset TRITON_INTERPRET before importing triton")
    records, seen, original = [], {}, JITFunction.run

    def run(self, *args, grid, warmup, **kwargs):
        rec = {"kernel": f"{self.fn.__module__.rsplit('.', 1)[-1]}.{self.fn.__name__}"}
        log, start = io.StringIO(), time.perf_counter()
        try:
            with contextlib.redirect_stdout(log):  # Triton prints the ptxas log (and, on failure, the PTX)
                kernel = original(self, *args, grid=grid, warmup=True, **kwargs)
        except Exception as err:  # the compiler's own errors: CompilationError, PTXASError, ...
            rec.update(ok=False, error=_message(err))
            kernel = None
        else:
            rec.update(ok=True, error=None, **_resources(kernel, log.getvalue(), seen))
        rec["seconds"] = round(time.perf_counter() - start, 3)
        records.append(rec)
        return kernel

    saved_log, saved_driver = knobs.nvidia.dump_ptxas_log, driver._active  # None until first use
    driver.set_active(_TargetDriver(arch))
    knobs.nvidia.dump_ptxas_log = True
    JITFunction.run = run
    try:
        yield records
    finally:
        JITFunction.run = original
        knobs.nvidia.dump_ptxas_log = saved_log
        driver.set_active(saved_driver)


def all_kernels() -> list[str]:
    """Every launchable kernel (a @triton.jit function named *_kernel) in sr_ops.triton."""
    import importlib
    import pkgutil

    from triton.runtime.jit import JITFunction

    import sr_ops.triton as pkg

    names = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("compile_"):
            continue
        mod = importlib.import_module(f"sr_ops.triton.{info.name}")
        names += [f"{info.name}.{n}" for n, v in vars(mod).items()
                  if isinstance(v, JITFunction) and n.endswith("_kernel") and v.fn.__module__ == mod.__name__]
    return sorted(names)


def selected(case_id: str, pattern: str) -> bool:
    """pattern: comma-separated globs over case ids."""
    return any(fnmatch.fnmatch(case_id, p) for p in pattern.split(","))


def _worker(arch: int, pattern: str, shard: tuple[int, int]) -> dict:
    import torch

    torch.manual_seed(0)
    cases = [c for c in CASES if selected(c.id, pattern)][shard[0]::shard[1]]
    out = []
    with compile_only(arch) as records:
        for case in cases:
            start = len(records)
            try:
                case.call(getattr(torch, case.dtype))
            except Exception as err:  # host code of the wrapper (or of the case) failed
                records.append({"kernel": "(wrapper)", "ok": False, "error": _message(err)})
            if len(records) == start:
                records.append({"kernel": "(wrapper)", "ok": False, "error": "launched no kernel"})
            for rec in records[start:]:
                out.append(dict(rec, case=case.id, op=case.op, variant=case.variant, dtype=case.dtype, arch=arch))
    return {"records": out, "kernels": all_kernels()}


def run_workers(archs=ARCHS, pattern: str = "*", jobs: int | None = None, verbose: bool = False) -> dict:
    """Runs the check in subprocesses (one or more per arch, `jobs` at a time); returns
    {"records": [...], "kernels": {arch: [every kernel]}, "seconds": wall time}."""
    jobs = jobs or max(1, min(os.cpu_count() or 1, 8))
    shards = max(1, jobs // len(archs))
    tasks = [(arch, i, shards) for arch in archs for i in range(shards)]
    tmp = tempfile.mkdtemp(prefix="sr_ops_compile_check_")
    env = {k: v for k, v in os.environ.items() if k not in _HIDING}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH")) if p)
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9's default, stated to silence its warning
    start, running, done = time.perf_counter(), [], []
    try:
        while tasks or running:
            while tasks and len(running) < jobs:
                arch, i, n = tasks.pop(0)
                path = os.path.join(tmp, f"sm{arch}_{i}.json")
                cmd = [sys.executable, "-m", "sr_ops.triton.compile_check", "--worker", str(arch),
                       "--shard", f"{i}/{n}", "--cases", pattern, "--json", path]
                wenv = dict(env, TRITON_CACHE_DIR=os.path.join(tmp, f"cache{arch}_{i}"))
                running.append((arch, path, subprocess.Popen(cmd, env=wenv, cwd=_ROOT, stdout=subprocess.PIPE,
                                                             stderr=subprocess.STDOUT, text=True)))
            arch, path, proc = running.pop(0)
            log, _ = proc.communicate()
            if proc.returncode != 0 or not os.path.exists(path):
                raise RuntimeError(f"compile_check worker for sm_{arch} failed ({proc.returncode}):\n{log[-6000:]}")
            if verbose and log.strip():
                print(log, file=sys.stderr)
            with open(path) as f:
                done.append((arch, json.load(f)))
    finally:
        for _, _, proc in running:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    order = {c.id: i for i, c in enumerate(CASES)}
    records = sorted((r for _, d in done for r in d["records"]), key=lambda r: (r["arch"], order[r["case"]]))
    return {"records": records, "kernels": {a: d["kernels"] for a, d in done},
            "seconds": time.perf_counter() - start}


def _summary(rec: dict) -> str:
    if not rec["ok"]:
        return "FAIL"
    return (f"OK   regs {rec['regs']:>3}  spill {rec['spill_stores']}/{rec['spill_loads']} B  "
            f"smem {rec['shared']:>6} B  warps {rec['num_warps']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sr_ops.triton.compile_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", type=int, nargs="+", default=list(ARCHS), help="compute capabilities, e.g. 80 90")
    p.add_argument("--cases", default="*", help="comma-separated globs over case ids, e.g. 'eca-*,*-float64'")
    p.add_argument("--jobs", type=int, default=None, help="parallel compiler processes (default: CPU count)")
    p.add_argument("--report", metavar="MD", help="write the resource tables (first --arch) to this markdown file")
    p.add_argument("--json", metavar="PATH", help="write every record as JSON")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    p.add_argument("--shard", default="0/1", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:  # inside a subprocess run_workers started
        i, n = map(int, args.shard.split("/"))
        result = _worker(args.worker, args.cases, (i, n))
        with open(args.json, "w") as f:
            json.dump(result, f)
        return 0
    result = run_workers(tuple(args.arch), args.cases, args.jobs)
    failed = 0
    for rec in result["records"]:
        print(f"sm_{rec['arch']}  {rec['op']:<16} {rec['variant']:<24} {rec['dtype']:<9} "
              f"{rec['kernel'].split('.')[-1]:<20} {_summary(rec)}")
        if not rec["ok"]:
            failed += 1
            print("    " + rec["error"].replace("\n", "\n    "))
    for arch, kernels in sorted(result["kernels"].items()):
        missed = sorted(set(kernels) - {r["kernel"] for r in result["records"] if r["arch"] == arch})
        if missed and args.cases == "*":
            failed += len(missed)
            print(f"sm_{arch}: kernels no case compiled: {', '.join(missed)}")
    print(f"{len(result['records'])} launches, {failed} failures, {result['seconds']:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.report:
        from sr_ops.triton.compile_report import write_report

        write_report(args.report, result["records"], args.arch[0])
        print(f"wrote {args.report}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
