"""The in-process stages of `make gpu-check` (sr_ops.bench.gpu_check runs each in its own
process, so a crash or a poisoned CUDA context ends one stage, not the run):

    python -m sr_ops.bench.gpu_stages env|mm|ops|models|roofline|compile --work DIR --deadline EPOCH [--dry]

Item stages (ops, models, roofline, compile) append one JSON line per event to DIR/<stage>.jsonl:
{"plan": [keys]} first, then {"start": key} and {"row": {...}} per row, so a run killed or
restarted resumes after the last row and the row it died in is recorded as such. Past the
deadline a stage starts no new row (those are recorded as skipped, "time box"). After a
failed row whose CUDA context no longer works the process exits with status 3 and the
driver starts it again.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback

import torch

from sr_ops.bench.gpu_rows import Runner, _err, cuda_alive, measure, planted, rel_err

__all__ = ["Runner", "STAGES", "config", "main"]


def config(dry: bool) -> dict:
    if dry:
        return {"device": "cpu", "fused": ("cpu", "triton"), "compile_backend": "aot_eager", "warmup": 0,
                "repeats": 1, "max_seconds": 0.0, "mm_n": 256, "graph": False, "single": True}
    return {"device": "cuda", "fused": ("cuda", "triton"), "compile_backend": "inductor", "warmup": 3,
            "repeats": 100, "max_seconds": 0.5, "mm_n": 8192, "graph": True}


# --- stages ------------------------------------------------------------------------------

def stage_env(work: str, cfg: dict, dry: bool, deadline: float) -> dict:
    import importlib.util

    from sr_ops.bench.runner import git_commit

    info = {"commit": git_commit(), "python": sys.version.split()[0], "platform": platform.platform(),
            "torch": torch.__version__,
            "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(), "cpu_count": os.cpu_count(),
            "packages": {m: importlib.util.find_spec(m) is not None
                         for m in ("pytest", "xdist", "pytest_benchmark", "pytest_timeout", "numpy", "ninja",
                                   "triton")},
            "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}}
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
    if nvcc:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout.strip().splitlines()
        info["nvcc"] = out[-1] if out else None
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(device=p.name, capability=f"{p.major}.{p.minor}", sms=p.multi_processor_count,
                    memory_gib=round(p.total_memory / 2**30, 1), l2_mb=getattr(p, "L2_cache_size", 0) / 2**20)
        if shutil.which("nvidia-smi"):
            try:
                q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.sm,clocks.max.sm,"
                                    "clocks.mem,power.draw,temperature.gpu", "--format=csv,noheader"],
                                   capture_output=True, text=True, timeout=20)
                info["nvidia_smi"] = q.stdout.strip() or q.stderr.strip()
            except (OSError, subprocess.SubprocessError) as e:
                info["nvidia_smi"] = f"failed: {e}"
    else:
        from sr_ops.bench.runner import _cpu_name

        info["device"] = f"dry-{_cpu_name()}" if dry else None
    info["slug"] = "dry-cpu" if dry else slug(info.get("device") or "unknown-gpu")
    return info


def slug(name: str) -> str:
    out = "".join(c.lower() if c.isalnum() else "-" for c in name)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")


def stage_mm(work: str, cfg: dict, dry: bool, deadline: float) -> dict:
    from sr_ops.bench.timing import device_median_ms

    dev, n = torch.device(cfg["device"]), cfg["mm_n"]
    res = {"n": n, "tflops": {}}
    for name in ("float32", "bfloat16"):
        dt = getattr(torch, name)
        g = torch.Generator(device=dev).manual_seed(0)
        a = torch.randn(n, n, device=dev, dtype=dt, generator=g)  # random data: zeros run faster
        b = torch.randn(n, n, device=dev, dtype=dt, generator=g)
        t = device_median_ms(lambda: torch.mm(a, b), dev, repeats=max(cfg["repeats"] // 5, 1), warmup=cfg["warmup"],
                             max_seconds=2 * cfg["max_seconds"], flush_bytes=0)
        res["tflops"][name] = 2 * n ** 3 / (t["ms"] * 1e-3) / 1e12
        print(f"  torch.mm {name} {n}^3: {t['ms']:.3f} ms, {res['tflops'][name]:.1f} TFLOP/s", flush=True)
    return res


def _dtypes(item, dry):
    return item.dtypes or ("float32", "bfloat16")


def _inputs(item, dtype, dev):
    from sr_ops.bench.gpu_cases import cast

    d = item.make(dev)
    return d if dtype == "int64" else cast(d, getattr(torch, dtype))


def stage_ops(work: str, cfg: dict, dry: bool, deadline: float) -> dict:
    import sr_ops
    from sr_ops.bench.gpu_cases import op_items

    dev, r = torch.device(cfg["device"]), Runner("ops", work, deadline)
    items = op_items(dry)
    plan = [(it, dt, b) for it in items for dt in _dtypes(it, dry) for b in (*cfg["fused"], "reference")]
    r.plan([f"{it.key}|{dt}|{b}" for it, dt, b in plan])
    cache: dict = {}  # (item key, dtype) -> (inputs, reference output)
    for it, dt, b in plan:
        base = {"op": it.op, "case": it.label, "dtype": dt, "impl": "pytorch" if b == "reference" else "sr_ops",
                "backend": b, "flops": it.flops}

        def go(it=it, dt=dt, b=b):
            ck = (it.key, dt)
            if ck not in cache:
                cache.clear()
                d = _inputs(it, dt, dev)
                cache[ck] = (d, it.pytorch(d))
            d, ref = cache[ck]
            if b == "reference":
                return measure(lambda: it.pytorch(d), dev, cfg)

            def call():
                with sr_ops.use_backend(b):
                    return it.fused(d)
            return measure(call, dev, cfg, ref)
        r.run(f"{it.key}|{dt}|{b}", base, go)
    return {"failed_rows": r.failed}


def stage_compile(work: str, cfg: dict, dry: bool, deadline: float) -> dict:
    from sr_ops.bench.gpu_cases import op_items

    dev, r = torch.device(cfg["device"]), Runner("compile", work, deadline)
    items = [it for it in op_items(dry) if it.compile_call is not None]
    plan = [(it, dt) for dt in ("float32", "bfloat16", "int64") for it in items if dt in _dtypes(it, dry)]
    r.plan([f"{it.key}|{dt}|compile" for it, dt in plan])
    compiled: dict = {}
    for it, dt in plan:
        base = {"op": it.op, "case": it.label, "dtype": dt, "impl": "torch.compile", "backend": cfg["compile_backend"],
                "flops": it.flops}

        def go(it=it, dt=dt):
            if it.key not in compiled:
                compiled[it.key] = torch.compile(it.compile_target, dynamic=False, backend=cfg["compile_backend"])
            fn = compiled[it.key]
            d = _inputs(it, dt, dev)
            ref = it.pytorch(d)
            t0 = time.perf_counter()
            out = it.compile_call(fn, d)  # the compile
            if dev.type == "cuda":
                torch.cuda.synchronize()
            compile_s = time.perf_counter() - t0
            err = rel_err(out, ref)
            del out
            return dict(measure(lambda: it.compile_call(fn, d), dev, cfg), compile_s=compile_s, rel_err=err)
        r.run(f"{it.key}|{dt}|compile", base, go)
    return {"failed_rows": r.failed, "backend": cfg["compile_backend"]}


def _graph(fn):
    """fn captured in a CUDA graph (after warm-up on a side stream): (replay, output)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = fn()
    return g.replay, out


def stage_models(work: str, cfg: dict, dry: bool, deadline: float) -> dict:
    import sr_ops
    from sr_ops.bench.gpu_cases import model_items

    dev, r = torch.device(cfg["device"]), Runner("models", work, deadline)
    items = model_items(dry)
    plan = [(it, dt, b) for it in items for dt in it.dtypes for b in (*(it.backends or cfg["fused"]), "reference")]
    r.plan([f"{it.key}|{dt}|{b}" for it, dt, b in plan])
    cache: dict = {}
    for it, dt, b in plan:
        base = {"op": it.op, "case": it.label, "dtype": dt, "impl": "pytorch" if b == "reference" else "sr_ops",
                "backend": b}

        def go(it=it, dt=dt, b=b):
            ck = (it.key, dt)
            if ck not in cache:
                cache.clear()
                d = _inputs(it, dt, dev)
                cache[ck] = (d, it.run(dict(d, fused=False)))
            d, ref = cache[ck]
            if b == "reference":
                def call():
                    return it.run(dict(d, fused=False))
            else:
                def call():
                    with sr_ops.use_backend(b):
                        return it.run(dict(d, fused=True))
            res = measure(call, dev, cfg, ref, check=b != "reference")
            res.update(ms_eager=res["ms"], graph=False)
            if it.graph and cfg["graph"]:
                try:
                    replay, out = _graph(call)
                    replay()
                    err = None if b == "reference" else rel_err(out, ref)  # what the replays compute
                    t = measure(replay, dev, dict(cfg, warmup=1))
                    res.update(ms=t["ms"], min_ms=t["min_ms"], n=t["n"], graph=True, rel_err_eager=res["rel_err"],
                               rel_err=err)
                except Exception as e:  # noqa: BLE001 (eager numbers stand)
                    res["graph_error"] = _err(e)
                    print(f"    CUDA graph capture failed, eager timing kept: {res['graph_error']}", flush=True)
                    if not cuda_alive():
                        raise
            elif it.graph:
                res["graph_error"] = "dry run: no CUDA graphs on the CPU"
            res["fps"] = 1e3 / res["ms"]
            return res
        r.run(f"{it.key}|{dt}|{b}", base, go, na=it.dry_skip.get(b) if dry else None)
    return {"failed_rows": r.failed}


def stage_roofline(work: str, cfg: dict, dry: bool, deadline: float) -> dict:
    from sr_ops.bench.roofline_measure import stage_roofline as run

    return run(work, cfg, dry, deadline)


STAGES = {"env": stage_env, "mm": stage_mm, "ops": stage_ops, "models": stage_models, "roofline": stage_roofline,
          "compile": stage_compile}


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("stage", choices=sorted(STAGES))
    p.add_argument("--work", required=True)
    p.add_argument("--deadline", type=float, default=float("inf"))
    p.add_argument("--dry", action="store_true")
    a = p.parse_args(argv)
    os.makedirs(a.work, exist_ok=True)
    out = os.path.join(a.work, f"{a.stage}.json")
    t0 = time.perf_counter()
    try:
        planted(a.stage)
        res = {"status": "ok", "result": STAGES[a.stage](a.work, config(a.dry), a.dry, a.deadline)}
        if (res["result"] or {}).get("failed_rows"):
            res.update(status="failed", error=f"{res['result']['failed_rows']} rows failed")
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 (reported to the driver)
        traceback.print_exc()
        res = {"status": "failed", "error": _err(e), "traceback": traceback.format_exc()[-4000:]}
    res["seconds"] = time.perf_counter() - t0
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    return 0 if res["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
