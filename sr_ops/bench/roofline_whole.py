"""Whole-model rows of docs/gpu-roofline.md: RT4KSR and NAFNet-SR inference, every kernel of
a frame modelled (sr_ops ops on their Triton path, convolutions and the rest at the cost of a
PyTorch/cuDNN kernel at its own roofline), against the model's own roofline: the input, the
output and each intermediate map moved once, and the useful FLOPs at the tensor cores' peak."""
from __future__ import annotations

import math

import torch

from sr_ops.bench.roofline_model import H100, bound_time, launch_time
from sr_ops.bench.roofline_rows import torch_launch, triton_launches
from sr_ops.bench.roofline_workloads import model_calls, tensor_bytes

WHOLE = (("RT4KSR x2", "bfloat16"), ("NAFNet-SR x2", "bfloat16"))


def aten_flops(op: str, args: tuple, outputs: tuple) -> float:
    if op.startswith("aten.convolution"):
        w, out = args[1], outputs[0]
        return 2.0 * out.numel() * w.shape[1] * w.shape[2] * w.shape[3]
    if op.startswith(("aten.addmm", "aten.mm", "aten.bmm")):
        a, b = args[-2], args[-1]
        return 2.0 * math.prod(a.shape) * b.shape[-1]
    return float(sum(o.numel() for o in outputs if isinstance(o, torch.Tensor)))


def model_row(name: str, dtype: str, facts: dict) -> dict:
    dt = getattr(torch, dtype)
    calls = model_calls(name, dt)
    parts: dict[str, float] = {}
    nbytes = flops = 0.0
    first = True
    for c in calls:
        outs = [o for o in c.outputs if isinstance(o, torch.Tensor)]
        if first and c.args and isinstance(c.args[0], torch.Tensor):
            nbytes += tensor_bytes(c.args[0])  # the model's input
            first = False
        nbytes += c.count * tensor_bytes(*outs)  # each intermediate (and the output) once
        if c.op.startswith("sr_ops."):
            launches, _, _ = triton_launches(c, "fwd", dtype, facts["triton"])
            key = f"sr_ops.{c.op.split('.')[1]} (Triton)"
            f = sum(ln.flops for ln in launches)
        else:
            f = aten_flops(c.op, c.args, tuple(outs))
            n = tensor_bytes(*c.args, *outs)
            if not n:
                continue
            engine = "tc16" if c.op.startswith(("aten.convolution", "aten.addmm", "aten.mm", "aten.bmm")) else "simt"
            launches = [torch_launch(c.op, n, f if engine == "tc16" else 0.0, engine)]
            key = "convolutions (cuDNN)" if c.op.startswith("aten.convolution") else "other PyTorch kernels"
        flops += c.count * f
        parts[key] = parts.get(key, 0.0) + c.count * sum(launch_time(H100, ln)["s"] for ln in launches)
    bound = bound_time(H100, nbytes, flops, "tc16")
    total = sum(parts.values())
    return {"model": name, "dtype": dtype, "bytes": nbytes, "flops": flops, "bound": bound, "modelled": total,
            "parts": dict(sorted(parts.items(), key=lambda kv: -kv[1]))}


def model_rows(facts: dict) -> list[dict]:
    return [model_row(name, dtype, facts) for name, dtype in WHOLE]


def render_models(rows: list[dict]) -> list[str]:
    out = ["| model | dtype | compulsory MB | GFLOP | H100 bound ms (limit) | modelled ms | frames/s modelled "
           "| fraction | where the time goes (ms) |", "|" + "---|" * 9]
    for r in rows:
        parts = "; ".join(f"{k} {v * 1e3:.3f}" for k, v in r["parts"].items())
        out.append(f"| {r['model']} | {r['dtype']} | {r['bytes'] / 1e6:,.0f} | {r['flops'] / 1e9:,.1f} "
                   f"| {r['bound'][0] * 1e3:.3f} ({r['bound'][1]}) | {r['modelled'] * 1e3:.3f} "
                   f"| {1 / r['modelled']:,.0f} | {r['bound'][0] / r['modelled']:.0%} | {parts} |")
    return out
