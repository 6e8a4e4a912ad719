"""What each op's Triton path launches at a workload's sizes, without running it.

The op's Triton entry (its BackendTable's ``triton`` implementation, forward or backward) is
called on meta tensors (ClassSR's on never-filled CPU tensors) with every
``kernel[grid](...)`` intercepted: the grid, num_warps and tensor arguments are recorded and
nothing compiles or runs. Torch ops the wrapper runs around its kernels (a sum of per-block
partials, a sort, a copy) are recorded by a dispatch mode as launches of their own.
"""
from __future__ import annotations

import contextlib
import importlib

import torch

from sr_ops.bench.roofline_workloads import Call, Recorder, tensor_bytes


@contextlib.contextmanager
def intercept():
    """Inside: Triton launches append {kernel, grid, warps, tensors} to the yielded list."""
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    # both launch paths: kernels decorated while TRITON_INTERPRET=1 (the test suite) are
    # InterpretedFunctions, and stay so after the variable goes
    classes = (JITFunction, InterpretedFunction)
    records, originals = [], [c.run for c in classes]

    def run(self, *args, grid, warmup, **kwargs):
        named = dict(zip(self.arg_names, args), **kwargs)
        g = grid(named) if callable(grid) else grid
        records.append({"kernel": f"{self.fn.__module__.rsplit('.', 1)[-1]}.{self.fn.__name__}",
                        "grid": tuple(int(v) for v in g), "warps": int(kwargs.get("num_warps", 4)),
                        "bytes": tensor_bytes(*[a for a in args if isinstance(a, torch.Tensor)])})
        return None

    for c in classes:
        c.run = run
    try:
        yield records
    finally:
        for c, original in zip(classes, originals):
            c.run = original


def _tables(op: str):
    mod = importlib.import_module(f"sr_ops.ops.{op}")
    return getattr(mod, "_forward", None), getattr(mod, "_backward", None)


def _tensors(args):
    n = next((i for i, a in enumerate(args) if not isinstance(a, torch.Tensor)), len(args))
    return args[:n], args[n:]


# Backward arguments from the forward call's (args, outputs, grad of the first output), for
# the ops whose backward is not backward(grad, *tensors, *attrs).
_BACKWARD_ARGS = {
    "cross_scale_knn": lambda a, o, g: (g, o[1], a[0], a[1], a[3], a[4]),
    "graph_aggregate": lambda a, o, g: (g, a[0], a[1], a[2], a[7], a[3], a[4], a[5], a[6], a[8], a[9]),
    "patch2img": lambda a, o, g: (g, a[2], a[3]),
    "gather_patches": lambda a, o, g: (g, a[1], a[2], tuple(a[0].shape)),
    "merge_patches": lambda a, o, g: (g, a[1], a[2], a[0].shape[-1] // a[4], a[4]),
}


def backward_args(call: Call, outputs: tuple):
    op = call.op.split(".")[1]
    g = torch.empty_like(outputs[0])
    if op in _BACKWARD_ARGS:
        return _BACKWARD_ARGS[op](call.args, outputs, g)
    tensors, attrs = _tensors(call.args)
    return (g, *tensors, *attrs)


def op_launches(call: Call, direction: str) -> tuple[list[dict], list[Call], tuple, int]:
    """(Triton launches, torch ops the wrapper ran, the op's outputs, compulsory bytes) for one
    call; the compulsory bytes are what the forward or backward entry takes and returns, once."""
    op = call.op.split(".")[1]
    fwd, bwd = _tables(op)
    outputs = getattr(torch.ops.sr_ops, op)(*call.args)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    table = fwd if direction == "fwd" else bwd
    if table is None or "triton" not in table.impls:
        raise LookupError(f"{op} has no Triton {direction}")
    args = call.args if direction == "fwd" else backward_args(call, outputs)
    rec = Recorder(call.model)
    with intercept() as launches, rec:
        result = table.impls["triton"](*args)
    compulsory = tensor_bytes(*args, *(result if isinstance(result, (tuple, list)) else (result,)))
    return launches, [c for c in rec.calls if not c.op.startswith("sr_ops")], outputs, compulsory
