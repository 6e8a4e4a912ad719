"""The CUDA section of docs/gpu-kernels.md: per kernel, what ptxas reports for sm_90.

Each csrc/cuda/*.cu is compiled on its own (the files are torch-free) with

    nvcc -c -std=c++17 -Icsrc -arch=sm_90 -Xptxas -v <torch's -D__CUDA_NO_HALF_*... defines>

and ptxas's per-entry lines (registers, barriers, stack frame, spill stores/loads, static
shared memory) are parsed, the names demangled with c++filt, and the section
"## CUDA kernels (nvcc -Xptxas -v)" of the markdown file replaced (the rest of the file,
the Triton section that sr_ops.triton.compile_check writes, is kept). No GPU needed.

    python sr_ops/bench/cuda_resources.py [--report docs/gpu-kernels.md] [--json out.json]

(`make cuda-resources`). Exits non-zero when a file does not compile or a hot kernel
spills without a note in NOTES saying why.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import util as _importlib_util

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load_ptx_facts():
    # By path: this file also runs as a script on GPU machines where sr_ops may not import.
    spec = _importlib_util.spec_from_file_location("_sr_ptx_facts", os.path.join(os.path.dirname(__file__),
                                                                                 "ptx_facts.py"))
    mod = _importlib_util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ptx_facts = _load_ptx_facts()
HEADING = "## CUDA kernels (nvcc -Xptxas -v)"  # sr_ops.triton.compile_report.CUDA_HEADING


def _default_arch() -> int:
    # sr_ops/_meta.py as text: this file runs as a script, where importing sr_ops may fail.
    with open(os.path.join(ROOT, "sr_ops", "_meta.py")) as f:
        return int(re.search(r'^DEFAULT_CUDA_ARCH = "(\d+)"', f.read(), re.M).group(1))


ARCH = _default_arch()
TORCH_DEFINES = ["-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
                 "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__"]
FLAGS = ["-c", "-std=c++17", "-Icsrc", f"-arch=sm_{ARCH}", "-Xptxas", "-v", *TORCH_DEFINES]

# The kernels a model's forward pass spends its time in: these must not spill.
HOT = ("cross_scale_knn.knn_fwd_kernel", "graph_aggregate.affine_kernel", "graph_aggregate.fold_kernel",
       "dwconv_gate_ca.pool_kernel", "dwconv_gate_ca.mix_kernel", "dwconv_gate_ca.scale_kernel",
       "layernorm2d.fwd_kernel")

# Why a kernel has a stack frame or spills, where that is known and accepted.
NOTES = {
    "cross_scale_knn.knn_fwd_kernel": (
        "the stack frame is each owner thread's candidate set, `best_d`, `best_lo`, `best_hi` and `best_i` "
        "of k + 4 slots each (up to 36: the expansion, its two error bounds and the key number), and the "
        "final top-k, indexed by the run-time k, so they live in local memory (L1-cached) rather than "
        "registers; only the 64 owner threads of a block touch them, once per candidate inside the window, "
        "against 32 multiply-adds per candidate and thread for the dots (a compile-time k would put them in "
        "registers). See the table for which dtypes spill; float64 is the gradcheck dtype, not a model's."),
}

_DTYPES = {"float": "float32", "double": "float64", "__half": "float16", "__nv_bfloat16": "bfloat16",
           "long": "int64", "int": "int32", "bool": "bool"}
_DTYPE_ORDER = ("float32", "float16", "bfloat16", "float64")


def find_nvcc() -> str | None:
    for cand in (os.environ.get("NVCC"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def nvcc_version(nvcc: str) -> str:
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"release ([\d.]+)", out)
    return m.group(1) if m else "?"


def compile_one(nvcc: str, path: str, outdir: str) -> tuple[str, int, str, str]:
    """(path, return code, nvcc's output, the PTX) for one .cu file: one compile, its PTX kept."""
    stem = os.path.splitext(os.path.basename(path))[0]
    keep = os.path.join(outdir, stem)
    os.makedirs(keep, exist_ok=True)
    p = subprocess.run([nvcc, *FLAGS, "--keep", "--keep-dir", keep, path, "-o", os.path.join(keep, stem + ".o")],
                       cwd=ROOT, capture_output=True, text=True)
    ptx_path = os.path.join(keep, stem + ".ptx")
    ptx = open(ptx_path).read() if os.path.exists(ptx_path) else ""
    return path, p.returncode, p.stdout + p.stderr, ptx


_ENTRY = re.compile(r"Compiling entry function '([^']+)' for 'sm_(\d+a?)'")
_PROPS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")


def parse_ptxas(log: str) -> list[dict]:
    """One record per entry function in a ptxas -v log (mangled names)."""
    recs: list[dict] = []
    cur = None
    for line in log.splitlines():
        m = _ENTRY.search(line)
        if m:
            cur = {"mangled": m.group(1), "arch": m.group(2), "regs": None, "stack": 0, "spill_stores": 0,
                   "spill_loads": 0, "shared": 0, "barriers": 0}
            recs.append(cur)
            continue
        if cur is None:
            continue
        m = _PROPS.search(line)
        if m:
            cur["stack"], cur["spill_stores"], cur["spill_loads"] = map(int, m.groups())
            continue
        m = _USED.search(line)
        if m:
            cur["regs"] = int(m.group(1))
            b = re.search(r"used (\d+) barriers", line)
            s = re.search(r"(\d+) bytes smem", line)
            cur["barriers"] = int(b.group(1)) if b else 0
            cur["shared"] = int(s.group(1)) if s else 0
    return recs


def demangle(names: list[str]) -> list[str]:
    cxxfilt = shutil.which("c++filt")
    if not cxxfilt or not names:
        return list(names)
    out = subprocess.run([cxxfilt], input="\n".join(names) + "\n", capture_output=True, text=True).stdout
    lines = out.splitlines()
    return lines if len(lines) == len(names) else list(names)


def split_name(demangled: str) -> tuple[str, list[str]]:
    """'void sr_cuda::(anonymous namespace)::knn_fwd_kernel<__half, float>(...)' ->
    ('knn_fwd_kernel', ['float16', 'float32'])."""
    s = demangled.replace("(anonymous namespace)::", "")
    s = re.sub(r"^void ", "", s)
    depth, cut = 0, len(s)
    for i, ch in enumerate(s):  # the argument list: the first '(' outside template brackets
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            cut = i
            break
    s = s[:cut]
    name, _, targs = s.partition("<")
    name = name.rsplit("::", 1)[-1]
    args = [a.strip() for a in targs[:-1].split(",")] if targs else []
    return name, [_DTYPES.get(a, a) for a in args]


def collect(jobs: int | None = None, files: list[str] | None = None, log=print) -> dict:
    nvcc = find_nvcc()
    if nvcc is None:
        raise RuntimeError("nvcc not found (set NVCC or put it on PATH)")
    files = files or sorted(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cu")))
    jobs = jobs or min(len(files), os.cpu_count() or 1)
    records, failed = [], []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sr-cuda-resources-") as tmp, \
            concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        for path, rc, out, ptx in pool.map(lambda f: compile_one(nvcc, f, tmp), files):
            rel = os.path.relpath(path, ROOT)
            log(f"nvcc {rel}: {'ok' if rc == 0 else f'FAILED (rc {rc})'}")
            if rc != 0:
                failed.append({"file": rel, "output": out[-4000:]})
                continue
            bodies = ptx_facts.entries(ptx)
            for r in parse_ptxas(out):
                r.update(ptx_facts.facts(bodies.get(r["mangled"], "")))
                r["file"] = rel
                r["op"] = os.path.splitext(os.path.basename(path))[0]
                records.append(r)
    for r, d in zip(records, demangle([r["mangled"] for r in records])):
        r["demangled"] = d
        r["kernel"], r["targs"] = split_name(d)
        r["dtype"] = r["targs"][0] if r["targs"] else "—"
    dynamic = sorted(os.path.basename(f) for f in files if "SR_DYNAMIC_SHARED" in open(f).read())
    return {"nvcc": nvcc_version(nvcc), "flags": FLAGS, "records": records, "failed": failed,
            "files": [os.path.relpath(f, ROOT) for f in files], "dynamic_shared": dynamic,
            "seconds": time.perf_counter() - t0}


def _rank(r):
    d = r["dtype"]
    return (r["kernel"], _DTYPE_ORDER.index(d) if d in _DTYPE_ORDER else len(_DTYPE_ORDER), r["targs"])


def hot_problems(records) -> list[str]:
    """Hot kernels that spill with no note saying why."""
    return sorted({f"{r['op']}.{r['kernel']}" for r in records if f"{r['op']}.{r['kernel']}" in HOT
                   and r["spill_stores"] + r["spill_loads"] and f"{r['op']}.{r['kernel']}" not in NOTES})


def render(result: dict) -> str:
    recs = result["records"]
    key = lambda r: f"{r['op']}.{r['kernel']}"  # noqa: E731
    spilling = {}  # kernel -> the dtypes it spills in
    for r in sorted(recs, key=_rank):
        if r["spill_stores"] + r["spill_loads"] and r["dtype"] not in spilling.setdefault(key(r), []):
            spilling[key(r)].append(r["dtype"])
    stacked = sorted({key(r) for r in recs if r["stack"] and key(r) not in spilling})
    hot_spill = [k for k in spilling if k in HOT]
    hot_present = [k for k in HOT if any(key(r) == k for r in recs)]
    flags = " ".join(f for f in result["flags"] if not f.startswith("-D"))
    lines = [
        HEADING, "",
        "Generated by `make cuda-resources` (`python sr_ops/bench/cuda_resources.py --report docs/gpu-kernels.md`): "
        f"each `csrc/cuda/*.cu` compiled on its own by nvcc {result['nvcc']} with `nvcc {flags}` and torch's "
        "`-D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ -D__CUDA_NO_BFLOAT16_CONVERSIONS__ "
        "-D__CUDA_NO_HALF2_OPERATORS__`; one row per template instantiation ptxas compiled. Registers are per "
        "thread; spill stores/loads and the stack frame are ptxas's bytes per thread; shared is the static "
        "shared memory per block"
        + (f" (dynamic shared memory, set at launch, is not in it: {', '.join(result['dynamic_shared'])})."
           if result["dynamic_shared"] else " (no kernel uses dynamic shared memory)."), "",
        f"{len({key(r) for r in recs})} kernels, {len(recs)} instantiations, {len(result['failed'])} files "
        "failed to compile. Kernels that spill: "
        + (", ".join(f"`{k}` ({', '.join(v)})" for k, v in spilling.items()) if spilling else "none") + ". "
        + "Hot forward kernels (" + ", ".join(f"`{k}`" for k in hot_present) + "): "
        + ("spill-free." if not hot_spill else "spilling: "
           + ", ".join(f"`{k}` ({', '.join(spilling[k])})" for k in hot_spill) + "."),
        "",
    ]
    if stacked:
        lines += ["Kernels with a stack frame but no spills: " + ", ".join(f"`{k}`" for k in stacked) + ".", ""]
    for k in [*spilling, *stacked]:
        if k in NOTES:
            lines.append(f"- `{k}`: {NOTES[k]}")
    lines += [""] if any(k in NOTES for k in [*spilling, *stacked]) else []
    for f in result["failed"]:
        last = (f["output"].strip().splitlines() or ["?"])[-1]
        lines += [f"- **{f['file']}** failed to compile: {last}", ""]
    for op in sorted({r["op"] for r in recs}):
        lines += [f"### {op} (`csrc/cuda/{op}.cu`)", "",
                  "| kernel | template args | registers | spill stores / loads (B) | stack (B) | shared (B) "
                  "| barriers |",
                  "|---|---|---|---|---|---|---|"]
        for r in sorted((r for r in recs if r["op"] == op), key=_rank):
            hot = " (hot)" if key(r) in HOT else ""
            lines.append(f"| `{r['kernel']}`{hot} | {', '.join(r['targs']) or '—'} | {r['regs']} | "
                         f"{r['spill_stores']} / {r['spill_loads']} | {r['stack']} | {r['shared']} | {r['barriers']} |")
        lines.append("")
    return "\n".join(lines)


def replace_section(text: str, section: str) -> str:
    """`text` with its CUDA section (from HEADING to the next '## ' heading or the end)
    replaced by `section`; appended when it has none."""
    section = section.rstrip("\n") + "\n"
    if HEADING not in text:
        return text.rstrip("\n") + "\n\n" + section
    start = text.index(HEADING)
    nxt = text.find("\n## ", start + len(HEADING))
    rest = "" if nxt < 0 else "\n" + text[nxt + 1:]
    return text[:start] + section + rest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--report", metavar="MD", help="replace the CUDA section of this markdown file")
    p.add_argument("--json", metavar="PATH", help="write the parsed records here")
    p.add_argument("-j", "--jobs", type=int, default=None, help="nvcc processes at a time (default: CPUs)")
    args = p.parse_args(argv)
    try:
        result = collect(args.jobs)
    except RuntimeError as e:
        print(f"cuda-resources: {e}", file=sys.stderr)
        return 2
    for f in result["failed"]:
        print(f"\n{f['file']}:\n{f['output']}", file=sys.stderr)
    recs = result["records"]
    spills = [r for r in recs if r["spill_stores"] + r["spill_loads"]]
    print(f"{len(recs)} instantiations of {len({(r['op'], r['kernel']) for r in recs})} kernels in "
          f"{result['seconds']:.1f} s; max registers {max((r['regs'] or 0 for r in recs), default=0)}; "
          f"spilling: {', '.join(sorted({r['op'] + '.' + r['kernel'] for r in spills})) or 'none'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.report:
        path = args.report
        old = open(path).read() if os.path.exists(path) else "# GPU resources of the kernels\n"
        with open(path, "w") as f:
            f.write(replace_section(old, render(result)))
        print(f"wrote the CUDA section of {path}")
    bad_hot = hot_problems(recs)
    if bad_hot:
        print(f"hot kernels spill with no note in NOTES: {', '.join(bad_hot)}", file=sys.stderr)
    return 1 if result["failed"] or bad_hot else 0


if __name__ == "__main__":
    sys.exit(main())
