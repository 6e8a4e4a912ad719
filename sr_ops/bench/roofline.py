"""docs/gpu-roofline.md: every GPU kernel of the models' op calls against an H100's roofline.

    python -m sr_ops.bench.roofline                 # rewrite docs/gpu-roofline.md (~20 s, no GPU)
    python -m sr_ops.bench.roofline --check         # exit 1 when the file is stale
    python -m sr_ops.bench.roofline --update-facts  # recompile (Triton sm_90, nvcc sm_90) first

The compiled-code facts the model needs (registers, shared memory, load widths, tensor-core
use of each kernel) come from docs/gpu-kernel-facts.json, which ``--update-facts`` writes
from sr_ops.triton.compile_check and sr_ops/bench/cuda_resources.py (minutes; the compile
test in python_tests checks the file against the compilers' output). The model itself is
sr_ops.bench.roofline_model; its estimates are stated there and at the top of the document.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from sr_ops.bench import roofline_measure
from sr_ops.bench import roofline_model as rm
from sr_ops.bench.roofline_rows import cast, op_row
from sr_ops.bench.roofline_whole import model_rows, render_models
from sr_ops.bench.roofline_workloads import all_sr_calls

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "gpu-roofline.md")
FACTS = os.path.join(ROOT, "docs", "gpu-kernel-facts.json")
RESULTS = os.path.join(ROOT, "benchmarks", "results")
CUDA_LAUNCHES = os.path.join(ROOT, "docs", "gpu-cuda-launches.json")
DTYPES = ("float32", "bfloat16")
_FIELDS = ("regs", "shared", "num_warps", "spill_stores", "spill_loads", "mma", "ld128", "ld64", "ld_scalar",
           "float_atomics", "div64")


def summarise(records: list[dict], backend: str) -> dict:
    """{kernel: {dtype: {field: max over the kernel's variants}}} from compile records."""
    out: dict = {}
    for r in records:
        if not r.get("ok", True) or r.get("mma") is None:
            continue
        name = r["kernel"] if backend == "triton" else f"{r['op']}.{r['kernel']}"
        d = out.setdefault(name, {}).setdefault(r["dtype"], {})
        for f in _FIELDS:
            if r.get(f) is not None:
                d[f] = max(d.get(f, 0), r[f])
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def update_facts(path: str = FACTS) -> dict:
    from sr_ops.bench import cuda_resources
    from sr_ops.triton import compile_check

    triton = compile_check.run_workers((90,))["records"]
    cuda = cuda_resources.collect(log=lambda *_: None)["records"]
    facts = {"arch": "sm_90", "triton": summarise(triton, "triton"), "cuda": summarise(cuda, "cuda")}
    with open(path, "w") as f:
        json.dump(facts, f, indent=1, sort_keys=True)
        f.write("\n")
    return facts


def load_facts(path: str = FACTS) -> dict:
    with open(path) as f:
        return json.load(f)


def _us(s: float) -> str:
    return "—" if s != s else f"{s * 1e6:,.1f}"


def cuda_workloads(path: str = CUDA_LAUNCHES) -> dict:
    """{(model, op, dir, dtype): workload} of docs/gpu-cuda-launches.json (sr_ops.bench.roofline_cuda)."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {(w["model"], w["op"], w["dir"], w["dtype"]): w for w in json.load(f)["workloads"]}


def op_rows(facts: dict) -> list[dict]:
    rows, cuda = [], cuda_workloads()
    for dtype in DTYPES:
        for call in all_sr_calls(getattr(torch, dtype)):
            op = call.op.split(".")[1]
            for direction in ("fwd", "bwd"):
                try:
                    rows.append(op_row(cast(call, getattr(torch, dtype)), direction, dtype, facts,
                                       cuda.get((call.model, op, direction, dtype))))
                except LookupError:
                    continue  # no backward (inference-only op) or no Triton entry
    return rows


def render_ops(rows: list[dict], measured: dict) -> list[str]:
    out = ["| model | op | dir | dtype | calls | compulsory MB | GFLOP | H100 bound µs (limit) | H200 bound µs "
           "| Triton modelled µs (fraction) | CUDA modelled µs (fraction) | fast path on paper "
           "| Triton measured µs (÷ modelled) | CUDA measured µs (÷ modelled) |", "|" + "---|" * 14]
    for r in rows:
        key = (r["model"], r["op"], r["dir"], r["dtype"])
        tri, cud = measured.get((*key, "triton")), measured.get((*key, "cuda"))
        tri_s = "—" if tri is None else f"{tri * 1e3:,.1f} ({tri * 1e-3 / r['triton']:.2f})"
        cud_s = "—" if cud is None else f"{cud * 1e3:,.1f}" + ("" if r["cuda"] != r["cuda"] else
                                                               f" ({cud * 1e-3 / r['cuda']:.2f})")
        cuda_m = "no CUDA kernel" if r["cuda"] != r["cuda"] else f"{_us(r['cuda'])} ({r['cuda_fraction']:.0%})"
        fast = "triton" if r["cuda"] != r["cuda"] or r["triton"] <= r["cuda"] else "cuda"
        out.append(f"| {r['model']} | {r['op']} | {r['dir']} | {r['dtype']} | {r['count']} | {r['bytes'] / 1e6:,.1f} "
                   f"| {r['flops'] / 1e9:,.2f} | {_us(r['bound'][0])} ({r['bound'][1]}) | {_us(r['bound200'])} "
                   f"| {_us(r['triton'])} ({r['fraction']:.0%}) | {cuda_m} | {fast} | {tri_s} | {cud_s} |")
    return out


def render_launches(rows: list[dict]) -> list[str]:
    out = ["| model | op | dir | dtype | path | kernel | blocks | waves | warps/SM | load B | MB moved | µs | limit |",
           "|" + "---|" * 13]
    for r in rows:
        for path, ln, t in [("triton", *x) for x in r["launches"]] + [("cuda", *x) for x in r["cuda_launches"]]:
            out.append(f"| {r['model']} | {r['op']} | {r['dir']} | {r['dtype']} | {path} | `{ln.kernel}` "
                       f"| {ln.blocks:,} | {t['waves']:.2f} | {t['occupancy'] * 64:.0f} | {ln.load_bytes} "
                       f"| {ln.bytes / 1e6:,.1f} | {_us(t['s'])} | {t['limit']} |")
    return out


README = os.path.join(ROOT, "README.md")
BEGIN, END = "<!-- roofline:begin (python -m sr_ops.bench.roofline) -->", "<!-- roofline:end -->"


def readme_block(rows: list[dict], models: list[dict], measured: dict) -> str:
    """The README's GPU table: the whole models, then each op's bfloat16 rows (the models' dtype)."""
    ops = [r for r in rows if r["dtype"] == "bfloat16"]
    lines = [BEGIN, *render_models(models), "", *render_ops(ops, measured), END]
    return "\n".join(lines)


def with_readme_block(text: str, block: str) -> str:
    a, b = text.index(BEGIN), text.index(END) + len(END)
    return text[:a] + block + text[b:]


def render_all(facts: dict, results_dir: str = RESULTS) -> tuple[str, str]:
    """(docs/gpu-roofline.md, README.md) as they should read now."""
    rows, models = op_rows(facts), model_rows(facts)
    with open(README) as f:
        readme = with_readme_block(f.read(), readme_block(rows, models, roofline_measure.measured(results_dir)[1]))
    return render(facts, results_dir, rows, models), readme


def render(facts: dict, results_dir: str = RESULTS, rows=None, models=None) -> str:
    rows = op_rows(facts) if rows is None else rows
    models = model_rows(facts) if models is None else models
    source, measured = roofline_measure.measured(results_dir)
    where = (f"Measured columns: `make gpu-check` in {source}." if source else
             "Measured columns: none yet (no GPU has run `make gpu-check`'s roofline stage; "
             "benchmarks/results/gpu-*.json holds its rows when one has).")
    head = (rm.__doc__ or "").strip().split("\n\n", 1)[1]
    parts = ["# GPU roofline of the kernels (modelled, no GPU)", "",
             "Generated by `python -m sr_ops.bench.roofline` from the workloads of "
             "sr_ops/bench/roofline_workloads.py and the compiled-code facts of docs/gpu-kernel-facts.json "
             f"({facts.get('arch', 'sm_90')}). Do not edit by hand: python_tests/test_roofline.py fails when "
             "this file is stale.", "",
             f"Bounds: compulsory bytes at HBM bandwidth ({rm.H100.hbm / 1e12:.2f} TB/s on the H100, "
             f"{rm.H200.hbm / 1e12:.1f} on the H200) or useful FLOPs at the engine's peak, whichever is longer. "
             "The fraction is the bound over the modelled time of the launches as designed (each launch: "
             "the tensors it takes, occupancy from its registers and shared memory, waves over 132 SMs).",
             "", "## Model (estimates)", "", head, "",
             "## Whole models (inference)", "", *render_models(models), "",
             "## Ops at the models' sizes (Triton and CUDA paths)", "",
             "The CUDA path's launches are those its C++ glue makes, captured by the CUDA simulator's record "
             "mode (`python -m sr_ops.bench.roofline_cuda` → docs/gpu-cuda-launches.json: grid, block, shared "
             "memory and, per allocation a launch touches, the bytes from its lowest pointer into it to the "
             "allocation's end: an upper bound, loose where the glue packs a small table and a map into one "
             "workspace, as dwconv_gate_ca's backward does, so its CUDA rows read far too slow). " + where, "",
             *render_ops(rows, measured), "",
             "## Where the time goes: every launch", "", *render_launches(rows), ""]
    return "\n".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sr_ops.bench.roofline", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 if docs/gpu-roofline.md is stale")
    p.add_argument("--update-facts", action="store_true", help="recompile and rewrite docs/gpu-kernel-facts.json")
    p.add_argument("-o", "--output", default=DOC)
    args = p.parse_args(argv)
    os.environ.pop("TRITON_INTERPRET", None)  # nothing runs: launches are intercepted
    facts = update_facts() if args.update_facts else load_facts()
    stale = []
    for path, text in zip((args.output, README), render_all(facts)):
        with open(path) as f:
            if f.read() == text:
                continue
        stale.append(path)
        if not args.check:
            with open(path, "w") as f:
                f.write(text)
    verb = "stale" if args.check else "rewrote"
    print(f"{verb}: {', '.join(stale)}" if stale else "docs/gpu-roofline.md and README.md's table are up to date")
    return int(bool(stale) and args.check)


if __name__ == "__main__":
    sys.exit(main())
