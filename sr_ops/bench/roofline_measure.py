"""The measured column of docs/gpu-roofline.md: `make gpu-check`'s roofline stage.

Every row of the roofline (a model's op call at its size, forward and backward, float32 and
bfloat16) is run on the GPU by each fused backend (cuda, triton) with the op's own kernel
entry, timed by CUDA events (sr_ops.bench.gpu_rows.measure), and journalled as a row
``"<op> <dir>|<model>|<dtype>|<backend>"``. The inputs are the models' real calls: each model
runs once on the device with random weights and the sr_ops calls it makes are recorded.
`python -m sr_ops.bench.roofline` then reads the newest benchmarks/results/gpu-*.json and
fills the measured column (measured / modelled beside it). The dry run (CPU) uses inputs 16
times smaller per side, one call per op in float32 only, and the cpu backend alone (the ops stage runs Triton's
interpreter).
"""
from __future__ import annotations

import glob
import json
import os

import torch

from sr_ops.bench.roofline_launches import _tables, backward_args
from sr_ops.bench.roofline_rows import cast
from sr_ops.bench.roofline_workloads import all_sr_calls

SHRINK_DRY = 16


def _entry(op: str, direction: str, backend: str):
    fwd, bwd = _tables(op)
    table = fwd if direction == "fwd" else bwd
    return None if table is None else table.impls.get(backend)


def stage_roofline(work: str, cfg: dict, dry: bool, deadline: float) -> dict:
    from sr_ops.bench.gpu_rows import Runner, measure

    dev = torch.device(cfg["device"])
    r = Runner("roofline", work, deadline)
    # dry: the cpu backend only (the interpreter takes minutes here; the ops stage runs it)
    backends = ("cpu",) if dry else tuple(cfg["fused"])
    work_items = []
    calls = all_sr_calls(torch.float32, dev.type, SHRINK_DRY if dry else 1)  # bfloat16: the same calls cast
    if dry:  # the interpreter is slow: one call per op, float32 only
        calls = list({c.op: c for c in reversed(calls)}.values())[::-1]
    for dtype in ("float32",) if dry else ("float32", "bfloat16"):
        for call in (calls if dtype == "float32" else [cast(c, torch.bfloat16) for c in calls]):
            for direction in ("fwd", "bwd"):
                op = call.op.split(".")[1]
                for b in backends:
                    if _entry(op, direction, b) is not None:
                        work_items.append((call, op, direction, dtype, b))
    r.plan([f"{op} {d}|{c.model}|{dt}|{b}" for c, op, d, dt, b in work_items])
    for call, op, direction, dtype, b in work_items:
        base = {"op": f"{op} {direction}", "case": call.model, "dtype": dtype, "backend": b, "impl": "sr_ops"}

        def go(call=call, op=op, direction=direction, b=b):
            fn = _entry(op, direction, b)
            args = call.args
            if direction == "bwd":
                outs = getattr(torch.ops.sr_ops, op)(*call.args)
                args = backward_args(call, outs if isinstance(outs, tuple) else (outs,))
                args = (torch.randn_like(args[0]), *args[1:])
            return measure(lambda: fn(*args), dev, cfg)
        r.run(f"{op} {direction}|{call.model}|{dtype}|{b}", base, go)
    return {"failed_rows": r.failed}


def measured(results_dir: str) -> tuple[str | None, dict]:
    """(device, {(model, op, dir, dtype, backend): ms}) from the newest gpu-*.json there."""
    paths = sorted(glob.glob(os.path.join(results_dir, "gpu-*.json")), key=os.path.getmtime)
    for path in reversed(paths):
        with open(path) as f:
            doc = json.load(f)
        if not doc.get("roofline"):
            continue
        out = {}
        for row in doc["roofline"]:
            if row.get("status") == "ok":
                op, direction = row["op"].split(" ")
                out[(row["case"], op, direction, row["dtype"], row["backend"])] = row["ms"]
        return os.path.basename(path), out
    return None, {}
