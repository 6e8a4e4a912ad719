"""The GPU runbook in one command (`make gpu-check`), for the first minutes on a lent GPU.

Stages, each time-boxed inside one overall budget (8 minutes by default) and fail-soft (a
failing stage is recorded with its error and the next one runs):

  env      versions, the device, nvidia-smi
  build    sr_ops._C against the torch installed there (pip install -e . offline, else
           setup.py build_ext --inplace), SR_OPS_CUDA_ARCH from sr_ops/_meta.py, MAX_JOBS = the CPUs
  tests    every test marked `cuda` and the Triton tests, natively (TRITON_INTERPRET unset)
  mm       torch.mm TFLOP/s in float32 and bfloat16, the yardstick for the KNN kernels
  ops      every op in float32 and bfloat16: cuda and triton backends vs pure PyTorch
  models   RT4KSR x2 on a 1920x1080 frame (float16/float32, CUDA graph where it captures)
           and IGNN x2 at LR 512x512
  roofline every row of docs/gpu-roofline.md (each model's op calls at its size, forward and
           backward) on the cuda and triton backends: the measured column
  compile  torch.compile of the pure-PyTorch ops (last: it is the slowest part)

Python stages run as `python -m sr_ops.bench.gpu_stages` in their own processes (a crash
or a dead CUDA context ends that process only; item stages resume after a restart).
Results: <out>/gpu-<device>.json and .md (out: benchmarks/results), every stage's output
in build/gpu-check/gpu-check.log. Exit status 1 when any stage failed or was cut short.

    python -m sr_ops.bench.gpu_check [--dry] [--budget 480] [--stages build,tests,...]

--dry (or GPU_CHECK_DRY=1): the same run on the CPU with tiny sizes, the cpu backend and
Triton's interpreter standing in for cuda and triton, wall time for CUDA events, the CUDA
parts skipped with the reason printed; results in build/gpu-check-dry/.
Environment: GPU_CHECK_BUDGET (seconds), GPU_CHECK_STAGES (a subset), GPU_CHECK_WORK (the
folder for journals and the log), GPU_CHECK_PLANT=stage[,row:text] (raise in that stage or
in the rows whose key holds the text: to see that failures are reported).
"""
from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from sr_ops._meta import DEFAULT_CUDA_ARCH

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = sys.executable


@dataclass
class Stage:
    name: str
    box: float  # seconds at most (real run)
    box_dry: float
    reserve: float  # seconds kept back for it while earlier stages run (real run)
    python: bool = True  # a gpu_stages stage (else a command the driver runs)
    items: bool = False  # resumable item stage


STAGES = [
    Stage("env", 40, 40, 10),
    Stage("build", 240, 60, 60, python=False),
    Stage("tests", 170, 90, 40, python=False),
    Stage("mm", 40, 30, 10),
    Stage("ops", 150, 150, 40, items=True),
    Stage("models", 110, 90, 30, items=True),
    Stage("roofline", 90, 120, 30, items=True),
    Stage("compile", 200, 120, 0, items=True),
]
GRACE = 20  # seconds past its box before a stage is killed (it stops starting rows at the box)
STALL = {False: 150, True: 90}  # item stages: kill and restart when a row runs longer (real, dry)


class Log:
    def __init__(self, path: str):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.f = open(path, "w")
        self.lock = threading.Lock()

    def __call__(self, line: str, prefix: str = "") -> None:
        with self.lock:
            text = f"[{prefix}] {line}" if prefix else line
            print(text, flush=True)
            self.f.write(text + "\n")
            self.f.flush()


def run_cmd(cmd, log, prefix, timeout, env=None, stall_file=None, stall_s=None) -> dict:
    """Runs cmd with its output in the log; kills it after `timeout` s (or when `stall_file`
    has not changed for `stall_s` s). Returns rc (None when killed), seconds, why killed."""
    log("$ " + " ".join(cmd), prefix)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         errors="replace", start_new_session=True)
    tail: list[str] = []

    def pump():
        for line in p.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            del tail[:-60]
            log(line, prefix)
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    killed = None
    while p.poll() is None:
        time.sleep(0.5)
        now = time.monotonic()
        if now - t0 > timeout:
            killed = f"time box: killed after {timeout:.0f} s"
        elif (stall_file and stall_s and os.path.exists(stall_file)
              and time.time() - os.path.getmtime(stall_file) > stall_s):
            killed = f"stalled: no progress for {stall_s:.0f} s, killed"
        if killed:
            log(killed + " (SIGINT first, so pytest and the stages write what they have)", prefix)
            _stop(p)
            break
    reader.join(timeout=5)
    return {"rc": None if killed else p.returncode, "seconds": time.monotonic() - t0, "killed": killed,
            "tail": "\n".join(tail[-25:])}


def _stop(p: subprocess.Popen, grace: float = 15) -> None:
    """SIGINT to the command (pytest then reports and writes its junit file; a stage records
    KeyboardInterrupt), SIGKILL to its whole process group after `grace` seconds."""
    try:
        os.kill(p.pid, signal.SIGINT)
        p.wait(timeout=grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


def stage_env_vars(dry: bool) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if dry:
        env["TRITON_INTERPRET"] = "1"
    else:
        env.pop("TRITON_INTERPRET", None)  # Triton natively on the GPU
    return env


# --- the command stages -----------------------------------------------------------------

def do_build(ctx) -> dict:
    if ctx.dry:
        ctx.log("dry run: not rebuilding sr_ops._C (the GPU run builds with `pip install -e . --no-build-isolation "
                "--no-deps --no-index`, else `python setup.py build_ext --inplace`, SR_OPS_CUDA_ARCH="
                f"{DEFAULT_CUDA_ARCH}); "
                "checking that this environment's extension imports", "build")
        attempts = [("import", [PY, "-c", "import sr_ops._C as C; print('sr_ops._C:', C.__file__)"])]
        checks = []
    else:
        attempts = [("pip", [PY, "-m", "pip", "install", "--no-index", "--no-deps", "--no-build-isolation", "-e", "."]),
                    ("setup.py", [PY, "setup.py", "build_ext", "--inplace"])]
        checks = [[PY, "-m", "sr_ops._build_check"],
                  [PY, "-c", "import sr_ops, sys; b = sr_ops.available_backends(); print('backends:', b); "
                   "sys.exit(0 if {'cuda', 'triton'} <= set(b) else 1)"]]
    env = dict(stage_env_vars(ctx.dry), SR_OPS_CUDA_ARCH=DEFAULT_CUDA_ARCH, MAX_JOBS=str(os.cpu_count() or 4),
               FORCE_CUDA="1")
    if os.path.exists("/usr/local/cuda/bin/nvcc"):
        env.setdefault("CUDA_HOME", "/usr/local/cuda")
        env["PATH"] = env.get("PATH", "") + ":/usr/local/cuda/bin"
    if not ctx.dry:
        # A fresh inode for the new extension: this process imported the package, and a stale
        # sr_ops/_C*.so it mapped must not be overwritten in place (that can crash a process).
        for so in glob.glob(os.path.join(ROOT, "sr_ops", "_C*.so")):
            os.remove(so)
    tried = []
    for name, cmd in attempts:
        res = run_cmd(cmd, ctx.log, "build", ctx.left(), env)
        tried.append({"how": name, "rc": res["rc"], "seconds": round(res["seconds"], 1), "killed": res["killed"]})
        if res["rc"] == 0:
            break
    else:
        raise StageError("every build attempt failed: " + "; ".join(
            f"{t['how']} rc={t['rc']} {t['killed'] or ''}".strip() for t in tried), {"attempts": tried})
    for cmd in checks:
        res = run_cmd(cmd, ctx.log, "build", ctx.left(), env)
        if res["rc"] != 0:
            raise StageError(f"{' '.join(cmd[1:3])} failed: {res['tail'].splitlines()[-1:]}", {"attempts": tried})
    return {"attempts": tried, "built_with": tried[-1]["how"]}


def _junit(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    count = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    bad = []
    for case in root.iter("testcase"):
        for tag in ("failure", "error"):
            el = case.find(tag)
            if el is not None:
                msg = (el.get("message") or "").splitlines()
                bad.append(f"{case.get('classname')}::{case.get('name')}: {msg[0][:300] if msg else tag}")
    count["passed"] = count["tests"] - count["failures"] - count["errors"] - count["skipped"]
    count["failed_tests"] = bad[:100]
    return count


def do_tests(ctx) -> dict:
    import importlib.util

    junit = os.path.join(ctx.work, "tests.xml")
    if os.path.exists(junit):
        os.remove(junit)
    cmd = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda or triton", f"--junitxml={junit}"]
    if ctx.dry:
        ctx.log("dry run: Triton tests of two files in Triton's interpreter (no GPU: `cuda` tests skip); "
                "the GPU run takes python_tests and benchmarks natively", "tests")
        cmd += ["python_tests/test_vertex_map.py", "python_tests/test_tiled.py"]
    else:
        cmd += ["python_tests", "--ignore=python_tests/cuda_sim", "--ignore=python_tests/test_triton_compile.py"]
        if importlib.util.find_spec("pytest_benchmark"):
            cmd += ["benchmarks", "--benchmark-disable"]
        if importlib.util.find_spec("xdist"):
            cmd += ["-n", str(min(8, os.cpu_count() or 1))]
        if importlib.util.find_spec("pytest_timeout"):
            cmd += ["--timeout=150"]
    res = run_cmd(cmd, ctx.log, "tests", ctx.left(), stage_env_vars(ctx.dry))
    out = dict(_junit(junit), rc=res["rc"], command=" ".join(cmd[1:]))
    if res["rc"] != 0:
        why = res["killed"] or (f"{out.get('failures', '?')} failed, {out.get('errors', '?')} errors"
                                if res["rc"] == 1 else f"pytest exited {res['rc']}")
        raise StageError(f"tests: {why}", out)
    return out


def _planted(stage: str) -> None:
    """As sr_ops.bench.gpu_stages.planted (which the driver does not import: no torch here)."""
    if stage in os.environ.get("GPU_CHECK_PLANT", "").split(","):
        raise RuntimeError(f"planted failure in stage {stage!r} (GPU_CHECK_PLANT)")


class StageError(Exception):
    def __init__(self, msg: str, result: dict | None = None):
        super().__init__(msg)
        self.result = result


# --- running the stages -------------------------------------------------------------------

class Ctx:
    def __init__(self, dry, work, log, deadline):
        self.dry, self.work, self.log, self.deadline = dry, work, log, deadline
        self.box_end = deadline

    def left(self) -> float:
        return max(self.box_end - time.monotonic(), 1.0)


def _python_stage(ctx, st: Stage) -> dict:
    jsonl, out = os.path.join(ctx.work, f"{st.name}.jsonl"), os.path.join(ctx.work, f"{st.name}.json")
    for path in (jsonl, out):
        if os.path.exists(path):
            os.remove(path)
    restarts, runs = 0, []
    while True:
        soft = time.time() + (ctx.box_end - time.monotonic())  # wall clock for the child
        cmd = [PY, "-m", "sr_ops.bench.gpu_stages", st.name, "--work", ctx.work, "--deadline", f"{soft:.1f}"]
        res = run_cmd(cmd + (["--dry"] if ctx.dry else []), ctx.log, st.name, ctx.left() + GRACE,
                      stage_env_vars(ctx.dry), jsonl if st.items else None, STALL[ctx.dry] if st.items else None)
        runs.append({k: res[k] for k in ("rc", "killed")})
        again = st.items and (res["rc"] == 3 or (res["killed"] or "").startswith("stalled")
                              or res["rc"] not in (0, 1, None))
        if again and restarts < 3 and ctx.box_end - time.monotonic() > 10:
            restarts += 1
            why = res["killed"] or f"exit status {res['rc']}"
            ctx.log(f"restarting the stage (#{restarts}, resuming after its last row): {why}", st.name)
            continue
        break
    result = json.load(open(out)) if os.path.exists(out) else None
    if result is None:
        why = res["killed"] or f"exited {res['rc']} without a result"
        result = {"status": "failed", "error": f"{why}; last output: {res['tail'][-800:]}"}
    result["runs"] = runs
    return result


def read_rows(work: str, stage: str) -> list[dict]:
    """The rows of an item stage's journal, with every planned row that never ran."""
    path = os.path.join(work, f"{stage}.jsonl")
    if not os.path.exists(path):
        return []
    plan, rows = [], {}
    for line in open(path):
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "plan" in ev and not plan:
            plan = ev["plan"]
        elif "row" in ev:
            rows[ev["row"]["key"]] = ev["row"]
    for key in plan:
        if key not in rows:
            op, case, dtype, backend = key.split("|")
            rows[key] = {"key": key, "stage": stage, "op": op, "case": case, "dtype": dtype, "backend": backend,
                         "impl": "torch.compile" if backend == "compile" else "pytorch" if backend == "reference"
                         else "sr_ops", "status": "skipped", "error": "not run: the stage ended first"}
    order = {k: i for i, k in enumerate(plan)}
    return sorted(rows.values(), key=lambda r: order.get(r["key"], len(order)))


def run(dry: bool, budget: float, only: list[str] | None, out_dir: str | None) -> int:
    t0, started = time.monotonic(), datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    deadline = t0 + budget - GRACE - 20  # a stage may overrun its box by GRACE (+ SIGINT grace); then the report
    work = os.environ.get("GPU_CHECK_WORK") or os.path.join(ROOT, "build", "gpu-check-dry" if dry else "gpu-check")
    os.makedirs(work, exist_ok=True)
    log = Log(os.path.join(work, "gpu-check.log"))
    ctx = Ctx(dry, work, log, deadline)
    log(f"gpu-check{' (dry run)' if dry else ''}: budget {budget:.0f} s, python {PY}, work {work}")
    if dry:
        log("dry run: on the CPU with tiny sizes; the cpu backend stands in for cuda and Triton's interpreter for "
            "triton; skipped as CUDA-only: the CUDA build (the extension of this environment is used), CUDA events "
            "and the L2 flush (one call per row, wall time), CUDA-graph capture; torch.compile uses backend "
            "aot_eager, not inductor (its C++ compiles would take minutes on 2 cores)")
    stages = [s for s in STAGES if not only or s.name in only]
    records = []
    for i, st in enumerate(stages):
        now = time.monotonic()
        later = sum(s.reserve for s in stages[i + 1:]) if not dry else 0
        box = min(st.box_dry if dry else st.box, deadline - now - later)
        rec = {"name": st.name, "box_s": round(box, 1)}
        if box < 5:
            rec.update(status="skipped", error=f"no time left in the {budget:.0f} s budget", seconds=0)
            log(f"== {st.name}: skipped, no time left", st.name)
            records.append(rec)
            continue
        log(f"== {st.name} (time box {box:.0f} s)", st.name)
        ctx.box_end = now + box
        try:
            if st.python:
                res = _python_stage(ctx, st)
                rec.update(status=res.get("status", "failed"), error=res.get("error"), result=res.get("result"),
                           runs=res.get("runs"))
            else:
                _planted(st.name)
                rec.update(status="ok", result={"build": do_build, "tests": do_tests}[st.name](ctx))
        except StageError as e:
            rec.update(status="failed", error=str(e), result=e.result)
        except Exception as e:  # noqa: BLE001 (a stage's failure is a record, not the end)
            rec.update(status="failed", error=f"{type(e).__name__}: {e}")
        rec["seconds"] = round(time.monotonic() - now, 1)
        if st.items:
            rows = read_rows(work, st.name)
            rec["rows"] = rows
            cut = [r for r in rows if r["status"] == "skipped"]
            if cut and rec["status"] == "ok":
                rec.update(status="incomplete", error=f"{len(cut)} of {len(rows)} rows not run (time box)")
        note = f": {rec['error']}" if rec.get("error") else ""
        log(f"== {st.name}: {rec['status']} in {rec['seconds']:.0f} s{note}", st.name)
        records.append(rec)

    from sr_ops.bench import gpu_report

    env = next((r.get("result") for r in records if r["name"] == "env" and r.get("result")), None) or {}
    device = env.get("slug") or ("dry-cpu" if dry else "unknown-gpu")
    out_dir = out_dir or (work if dry else os.path.join(ROOT, "benchmarks", "results"))
    os.makedirs(out_dir, exist_ok=True)
    doc = gpu_report.assemble(records, dry=dry, budget=budget, started=started, wall_s=time.monotonic() - t0)
    base = os.path.join(out_dir, f"gpu-{device}")
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(gpu_report.markdown(doc))
    summary = gpu_report.summary(doc)
    log(summary)
    log(f"wrote {os.path.relpath(base, ROOT)}.json and .md; log {os.path.relpath(log.f.name, ROOT)}; "
        f"wall {time.monotonic() - t0:.0f} s")
    return 0 if not doc["failed"] else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="the GPU runbook (see the module docstring)")
    p.add_argument("--dry", action="store_true", default=os.environ.get("GPU_CHECK_DRY", "0") not in ("", "0"),
                   help="tiny sizes on the CPU (also GPU_CHECK_DRY=1)")
    p.add_argument("--budget", type=float, default=float(os.environ.get("GPU_CHECK_BUDGET", 480)),
                   help="seconds for the whole run (default 480; GPU_CHECK_BUDGET)")
    p.add_argument("--stages", default=os.environ.get("GPU_CHECK_STAGES"),
                   help="comma-separated subset of " + ",".join(s.name for s in STAGES))
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results, dry: build/gpu-check-dry)")
    a = p.parse_args(argv)
    only = [s.strip() for s in a.stages.split(",")] if a.stages else None
    if only and (bad := set(only) - {s.name for s in STAGES}):
        p.error(f"unknown stages {sorted(bad)}")
    if not a.dry and shutil.which("nvidia-smi") is None:
        print("gpu-check: no nvidia-smi here; for a CPU rehearsal use GPU_CHECK_DRY=1 (or --dry)", file=sys.stderr)
    return run(a.dry, a.budget, only, a.out)


if __name__ == "__main__":
    sys.exit(main())
