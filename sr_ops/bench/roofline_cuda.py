"""What each op's CUDA path launches at a workload's sizes, without a GPU: docs/gpu-cuda-launches.json.

    python -m sr_ops.bench.roofline_cuda            # rewrite docs/gpu-cuda-launches.json
    python -m sr_ops.bench.roofline_cuda --check    # exit 1 when the file is stale

The CUDA path's launches are chosen in C++ (csrc/cuda/*_glue.cpp and the .cu launchers), out
of Python's sight, so they are taken from the CUDA simulator (csrc/testing/cuda_sim) in its
record mode: every op call of roofline_workloads.all_sr_calls, float32 and bfloat16, forward
and backward, runs its BackendTable ``cuda`` entry with the private schemas sent to the
simulator's copies (``sr_ops_cudasim::_<op>_fwd``...), on never-filled CPU tensors of the
call's shapes and strides. Each SR_LAUNCH then records its kernel, grid, block, dynamic shared
memory and the allocations its pointer arguments point into (each once, at its full size:
an upper bound on what the launch moves), and its body is skipped, so a full-size workload
takes moments. The ATen ops the glue and the Python entry run around the kernels (a zeros,
a dtype cast, a copy) are recorded beside them by a dispatch mode, with their tensors' bytes.

Kernel parameters that are structs (the ``*Dims`` shapes) are not looked into: they hold
integers only, so no buffer hides there.

Integer arguments must be valid (the glue checks index ranges on the host): the models whose
traced calls carry integer tensors (IGNN's graph_aggregate idx, cross_scale_knn's idx for its
backward) are run once for real on the CPU in float32 to get them (about a minute; cached
under build/). ``indices="zeros"`` uses zeros instead (valid for every index argument here):
the launches do not depend on index values, which the freshness test checks by comparing a
zeros capture with the committed file.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sr_ops.backends import Kernel
from sr_ops.bench.roofline_launches import backward_args
from sr_ops.bench.roofline_workloads import MODELS, Call, all_sr_calls, model_calls, tensor_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JSON_PATH = os.path.join(ROOT, "docs", "gpu-cuda-launches.json")
CACHE_DIR = os.path.join(ROOT, "build", "roofline_cuda")
DTYPES = ("float32", "bfloat16")
_SKIP = ("aten.empty", "aten.new_empty", "aten.detach", "aten.lift_fresh", "aten.sym_", "aten.alias")


def load_sim():
    """torch.ops.sr_ops_cudasim, built if needed (python_tests/cuda_sim/_build.py)."""
    path = os.path.join(ROOT, "python_tests", "cuda_sim", "_build.py")
    mod = sys.modules.get("_build")  # the tests' own import: it holds the defined schemas
    if mod is None or os.path.abspath(getattr(mod, "__file__", "")) != os.path.abspath(path):
        mod = sys.modules.get("_sr_cuda_sim_build")
    if mod is None:
        spec = importlib.util.spec_from_file_location("_sr_cuda_sim_build", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules["_sr_cuda_sim_build"] = mod
    return mod.ops()


class SimRedirect(TorchDispatchMode):
    """Sends sr_ops's private kernel schemas to the simulator's copies and records the other
    ATen ops that move data, including those the glue runs inside the simulated kernel."""

    def __init__(self):
        super().__init__()
        self.torch_ops: list[dict] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func)
        if func.namespace == "sr_ops" and func._opname.startswith("_"):
            sim = getattr(getattr(torch.ops.sr_ops_cudasim, func._opname), func._overloadname)
            # Below the Python key, with this mode back on, so the glue's own ATen calls come here.
            with self:
                return sim.redispatch(torch._C.DispatchKeySet(torch._C.DispatchKey.CPU), *args, **kwargs)
        out = func(*args, **kwargs)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        if _moves_data(func, name, (*args, *kwargs.values()), outs):
            self.torch_ops.append({"op": name, "bytes": tensor_bytes(*args, *kwargs.values(), *outs)})
        return out


def _moves_data(func, name: str, inputs: tuple, outputs: tuple) -> bool:
    if name.startswith(_SKIP):
        return False
    if not any(r.alias_info is not None and not r.alias_info.is_write for r in func._schema.returns):
        return True
    # A view, unless it had to copy (`to` a new dtype, `contiguous` of a strided tensor).
    given = {t.untyped_storage().data_ptr() for t in inputs if isinstance(t, torch.Tensor)}
    return any(isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in given for t in outputs)


def _tables(op: str):
    import importlib

    mod = importlib.import_module(f"sr_ops.ops.{op}")
    return {"fwd": getattr(mod, "_forward", None), "bwd": getattr(mod, "_backward", None)}


def _not_cuda(table, args) -> str | None:
    # Why a GPU would not run this call on the CUDA kernels (backends.select's checks).
    if "cuda" not in table.impls:
        return "no CUDA entry"
    kernel = table.impls["cuda"]
    if not isinstance(kernel, Kernel) or args is None:
        return None
    first = next((a for a in args if isinstance(a, torch.Tensor)), None)
    if kernel.dtypes is not None and first is not None and first.dtype not in kernel.dtypes:
        return f"{first.dtype} not taken"
    return kernel.limits(*args) if kernel.limits is not None else None


def _is_index(x) -> bool:
    return isinstance(x, torch.Tensor) and not x.is_floating_point()


def _cache_path(model: str) -> str:
    return os.path.join(CACHE_DIR, model.replace(" ", "_") + ".pt")


def _signature(calls: list[Call]) -> list:
    return [(c.op, [tuple(a.shape) if isinstance(a, torch.Tensor) else None for a in (*c.args, *c.outputs)])
            for c in calls]


def model_indices(model: str, traced: list[Call], log=print) -> list[dict]:
    """Per traced call of `model`, {position in args + outputs: integer tensor} from a real
    float32 run on the CPU (cached in build/roofline_cuda/ while the calls' shapes hold)."""
    path = _cache_path(model)
    if os.path.exists(path):
        cached = torch.load(path)
        if cached["signature"] == _signature(traced):
            return cached["indices"]
    log(f"roofline_cuda: running {model} on the CPU for its index tensors...")
    real = [c for c in model_calls(model, torch.float32, True, "cpu") if c.op.startswith("sr_ops.")]
    if _signature(real) != _signature(traced):
        raise RuntimeError(f"{model}: the CPU run's calls differ from the meta trace's")
    indices = [{i: a for i, a in enumerate((*c.args, *c.outputs)) if _is_index(a)} for c in real]
    os.makedirs(CACHE_DIR, exist_ok=True)
    torch.save({"signature": _signature(traced), "indices": indices}, path)
    return indices


def _materialise(x, real=None):
    # Allocated while recording, so the simulator knows each buffer's size.
    if not isinstance(x, torch.Tensor):
        return x
    fresh = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype)
    if _is_index(x):
        fresh.copy_(real if real is not None else x if x.device.type == "cpu" else torch.zeros((), dtype=x.dtype))
    return fresh


def _launch_entry(rec: dict) -> dict:
    if rec["unknown"]:
        raise RuntimeError(f"{rec['kernel']}: {rec['unknown']} pointer argument(s) outside every recorded allocation")
    stem = os.path.splitext(os.path.basename(rec["file"]))[0]
    return {"kernel": f"{stem}.{rec['kernel'].split('<')[0].strip()}", "grid": rec["grid"], "block": rec["block"],
            "smem": rec["smem"], "bytes": sum(rec["buffers"]), "buffers": rec["buffers"]}


def capture_call(sim, call: Call, direction: str, dtype: str, indices: dict | None) -> dict | None:
    """One op call's CUDA launches (None when the op has no such entry point)."""
    op = call.op.split(".")[1]
    table = _tables(op)[direction]
    if table is None:
        return None
    head = {"model": call.model, "op": op, "dir": direction, "dtype": dtype, "count": call.count}
    why = _not_cuda(table, call.args if direction == "fwd" else None)
    if why:
        return {**head, "cuda": False, "why": why, "launches": [], "torch_ops": []}
    outputs = call.outputs
    if direction == "bwd" and not outputs:  # ClassSR's calls, built directly: their shapes on meta
        outputs = getattr(torch.ops.sr_ops, op)(*[a.to("meta") if isinstance(a, torch.Tensor) else a
                                                  for a in call.args])
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    n = len(call.args)
    real = indices or {}
    sim._sim_take_records()
    sim._sim_record(True)
    try:
        args = tuple(_materialise(a, real.get(i)) for i, a in enumerate(call.args))
        if direction == "bwd":
            outs = tuple(_materialise(o, real.get(n + i)) for i, o in enumerate(outputs))
            args = backward_args(Call(call.model, call.op, args), outs)
            why = _not_cuda(table, args)
            if why:
                return {**head, "cuda": False, "why": why, "launches": [], "torch_ops": []}
        with SimRedirect() as mode:
            table.impls["cuda"](*args)
    finally:
        sim._sim_record(False)
    launches = [_launch_entry(r) for r in json.loads(sim._sim_take_records())]
    return {**head, "cuda": True, "launches": launches, "torch_ops": mode.torch_ops}


def capture(write_json: str | None = None, indices: str = "model", calls_for=all_sr_calls, log=print) -> dict:
    """Every workload's CUDA launches; written to `write_json` when given. indices: "model"
    (real index tensors from a CPU run) or "zeros"."""
    sim = load_sim()
    workloads = []
    for dtype in DTYPES:
        calls = calls_for(getattr(torch, dtype))
        per_call: list = [None] * len(calls)
        if indices == "model":
            for model in MODELS:
                mine = [i for i, c in enumerate(calls) if c.model == model]
                traced = [calls[i] for i in mine]
                if any(_is_index(a) for c in traced for a in (*c.args, *c.outputs)):
                    for i, ind in zip(mine, model_indices(model, traced, log)):
                        per_call[i] = ind
        for call, ind in zip(calls, per_call):
            for direction in ("fwd", "bwd"):
                entry = capture_call(sim, call, direction, dtype, ind)
                if entry is not None:
                    workloads.append(entry)
    doc = {"workloads": workloads}
    if write_json is not None:
        with open(write_json, "w") as f:
            f.write(dumps(doc))
    return doc


def dumps(doc: dict) -> str:
    """Sorted keys; one line per launch, so a diff shows which launch changed."""
    lines = ['{"workloads": [']
    for i, w in enumerate(doc["workloads"]):
        head = {k: v for k, v in w.items() if k not in ("launches", "torch_ops")}
        lines.append(" {" + json.dumps(head, sort_keys=True)[1:-1] + ",")
        for key in ("launches", "torch_ops"):
            items = [json.dumps(x, sort_keys=True) for x in w[key]]
            body = "".join(f"\n   {x}" + ("," if j < len(items) - 1 else "") for j, x in enumerate(items))
            lines.append(f'  "{key}": [' + body + ("\n  ]" if items else "]") + ("," if key == "launches" else ""))
        lines.append(" }" + ("," if i < len(doc["workloads"]) - 1 else ""))
    lines.append("]}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when the JSON file is stale")
    ap.add_argument("--out", default=JSON_PATH)
    ap.add_argument("--indices", choices=("model", "zeros"), default="model")
    opts = ap.parse_args(argv)
    doc = capture(None, opts.indices)
    text = dumps(doc)
    if opts.check:
        with open(opts.out) as f:
            stale = f.read() != text
        print(f"{opts.out}: {'stale' if stale else 'up to date'}")
        return int(stale)
    with open(opts.out, "w") as f:
        f.write(text)
    print(f"wrote {opts.out}: {len(doc['workloads'])} workloads, "
          f"{sum(len(w['launches']) for w in doc['workloads'])} launches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
