"""Rows of docs/gpu-roofline.md: per op call, its compulsory traffic and FLOPs, its bound, and
the modelled time of its launches as designed (sr_ops.bench.roofline_model's estimates)."""
from __future__ import annotations

import math

import torch

from sr_ops.bench.roofline_launches import backward_args, op_launches
from sr_ops.bench.roofline_model import H100, H200, Launch, bound_time, launch_time
from sr_ops.bench.roofline_workloads import Call, tensor_bytes

# The kernel that does an op's FLOP-bound work (its FLOPs are charged to it).
FLOP_KERNEL = {"naf_ffn": "naf_ffn.", "cross_scale_knn": "cross_scale_knn._knn_fwd_kernel"}


def _floats(args):
    return [a for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()]


def op_flops(call: Call, direction: str, outputs: tuple) -> float:
    """Useful FLOPs (the arithmetic the op needs, not what a kernel repeats)."""
    op, a = call.op.split(".")[1], call.args
    first = a[0] if isinstance(a[0], torch.Tensor) else None
    if op == "naf_ffn":
        B, C, H, W = first.shape
        F = a[3].shape[0] // 2
        gemm = 2.0 * B * H * W * (C * 2 * F + F * C)
        return gemm + 12.0 * first.numel() if direction == "fwd" else 2 * gemm + 20.0 * first.numel()
    if op == "cross_scale_knn":
        B, C = first.shape[:2]
        k, p, window = a[2], a[3], a[5]
        m = outputs[0].shape[1]
        cand = min(window * window, a[1].shape[2] * a[1].shape[3])
        return 2.0 * B * m * cand * C * p * p if direction == "fwd" else 4.0 * B * m * k * C * p * p
    if op in ("layernorm2d", "gelu_layernorm2d"):
        return (8.0 if op == "layernorm2d" else 18.0) * first.numel() * (1 if direction == "fwd" else 1.5)
    if op == "dwconv_gate_ca":
        return 22.0 * first.numel() * (1 if direction == "fwd" else 2)
    return float(sum(t.numel() for t in _floats(outputs)))  # about one operation per output value


def _engine(facts: dict, dtype: str) -> str:
    if not facts.get("mma"):
        return "simt"
    return "tf32x3" if dtype == "float32" else "tc16"


def _load_bytes(facts: dict, element: int) -> int:
    return 16 if facts.get("ld128") else 8 if facts.get("ld64") and element < 8 else element


def triton_launches(call: Call, direction: str, dtype: str, facts: dict) -> tuple[list[Launch], tuple, int]:
    """The launches of one op call on the Triton path, its outputs and its compulsory bytes."""
    launches, torch_ops, outputs, compulsory = op_launches(call, direction)
    op = call.op.split(".")[1]
    element = torch.tensor([], dtype=getattr(torch, dtype)).element_size()
    flops = op_flops(call, direction, outputs)
    out = []
    # the op's FLOPs split evenly over its FLOP-bound launches (naf_ffn's backward has two)
    mains = [r for r in launches if FLOP_KERNEL.get(op) and r["kernel"].startswith(FLOP_KERNEL[op])]
    with_mma = [r for r in mains if facts.get(r["kernel"], {}).get("float32", {}).get("mma")]
    mains = with_mma or mains
    for rec in launches:
        f = facts.get(rec["kernel"], {}).get(dtype) or facts.get(rec["kernel"], {}).get("float32", {})
        main = rec in mains
        out.append(Launch(rec["kernel"], rec["bytes"], flops / len(mains) if main else 0.0,
                          _engine(f, dtype) if main else "simt",
                          blocks=math.prod(rec["grid"]), threads=32 * rec["warps"], regs=f.get("regs") or 64,
                          shared=f.get("shared") or 0, load_bytes=_load_bytes(f, element)))
    for t in torch_ops:
        n = tensor_bytes(*t.args, *t.outputs)
        if n:
            out.append(torch_launch(t.op, n))
    return out, outputs, compulsory


def torch_launch(name: str, nbytes: float, flops: float = 0.0, engine: str = "simt") -> Launch:
    """A PyTorch (or cuDNN/cuBLAS) kernel: full occupancy, 128-bit loads, many blocks."""
    return Launch(f"torch {name}", nbytes, flops, engine, blocks=max(132 * 8, int(nbytes // 16384)),
                  threads=256, regs=32, shared=0, load_bytes=16)


def op_row(call: Call, direction: str, dtype: str, facts: dict, cuda_work: dict | None = None) -> dict:
    """facts: docs/gpu-kernel-facts.json; cuda_work: this call's entry of docs/gpu-cuda-launches.json."""
    op = call.op.split(".")[1]
    row = {"model": call.model, "op": op, "dir": direction, "dtype": dtype, "count": call.count}
    launches, outputs, nbytes = triton_launches(call, direction, dtype, facts["triton"])
    flops = op_flops(call, direction, outputs)
    engine = "tf32x3" if dtype == "float32" else "tc16"
    engine = engine if op in FLOP_KERNEL else "simt"
    times = [launch_time(H100, ln) for ln in launches]
    row.update(bytes=nbytes, flops=flops, bound=bound_time(H100, nbytes, flops, engine),
               bound200=bound_time(H200, nbytes, flops, engine)[0], launches=list(zip(launches, times)),
               triton=sum(t["s"] for t in times))
    row["fraction"] = row["bound"][0] / row["triton"] if row["triton"] else float("nan")
    row["cuda"] = row["cuda_fraction"] = float("nan")
    row["cuda_launches"] = []
    if cuda_work and cuda_work.get("cuda"):
        lns = cuda_launches(cuda_work, dtype, facts["cuda"], flops)
        ts = [launch_time(H100, ln) for ln in lns]
        row.update(cuda=sum(x["s"] for x in ts), cuda_launches=list(zip(lns, ts)))
        row["cuda_fraction"] = row["bound"][0] / row["cuda"]
    return row



CUDA_FLOP_KERNEL = {"cross_scale_knn": "cross_scale_knn.knn_fwd_kernel"}


def cuda_launches(work: dict, dtype: str, facts: dict, flops: float) -> list[Launch]:
    """The CUDA path's launches of one workload of docs/gpu-cuda-launches.json (captured by the
    simulator's record mode: grid, block, shared memory, the allocations each launch touches)
    with the registers and load widths of docs/gpu-kernel-facts.json; the op's FLOPs are
    charged to its FLOP-bound kernel (CUDA cores: no CUDA kernel uses tensor cores yet)."""
    element = torch.tensor([], dtype=getattr(torch, dtype)).element_size()
    out = []
    for ln in work["launches"]:
        f = facts.get(ln["kernel"], {}).get(dtype) or facts.get(ln["kernel"], {}).get("float32", {})
        main = CUDA_FLOP_KERNEL.get(work["op"]) == ln["kernel"]
        out.append(Launch(ln["kernel"], ln["bytes"], flops if main else 0.0, "simt", blocks=math.prod(ln["grid"]),
                          threads=math.prod(ln["block"]), regs=f.get("regs") or 64,
                          shared=(f.get("shared") or 0) + ln.get("smem", 0), load_bytes=_load_bytes(f, element)))
    out += [torch_launch(o["op"], o["bytes"]) for o in work.get("torch_ops", []) if o["bytes"]]
    return out


def cast(call: Call, dtype: torch.dtype) -> Call:
    def conv(a):
        if isinstance(a, torch.Tensor) and a.is_floating_point():
            return a.to(dtype) if a.device.type != "meta" else torch.empty(a.shape, dtype=dtype, device="meta")
        return a
    return Call(call.model, call.op, tuple(conv(a) for a in call.args), call.count)


__all__ = ["op_row", "cast", "torch_launch", "op_flops", "backward_args"]
