"""A paper model of an H100 (and H200) for kernels we cannot time: bounds, occupancy, waves.

Datasheet figures (H100 SXM5): 3.35 TB/s HBM3, 67 TFLOP/s float32 on CUDA cores, 495 TFLOP/s
TF32 and 989 TFLOP/s bfloat16/float16 on tensor cores (dense), 132 SMs, 228 KB shared memory,
65,536 registers, 2,048 threads and 32 blocks per SM. H200: the same chip with 4.8 TB/s.

Everything else here is an ESTIMATE, stated once so every row uses the same one:

* a kernel launch costs ``LAUNCH_S`` (2 us, back-to-back launches on one stream, no CUDA graph);
* HBM latency under load is ``LATENCY_S`` (650 ns), so by Little's law an SM sustains at most
  (its bytes in flight) / latency; a warp has ``ILP`` (2) loads in flight, each 32 lanes x the
  load width (4 bytes scalar, 16 bytes for 128-bit loads); an SM moves at most
  ``SM_BYTES_PER_S`` (64 B/clock at 1.755 GHz, L2 to SM);
* float32 GEMMs at float32 accuracy on tensor cores cost three TF32 products (3xTF32), so their
  peak is 495 / 3 = 165 TFLOP/s; FLOP-bound kernels reach the peak scaled by the fraction of SMs
  they occupy and by their last partial wave;
* kernels PyTorch launches inside a wrapper (a sum, a cumsum, a copy) move their tensors once at
  full occupancy with 128-bit loads (PyTorch's vectorised elementwise and reduction kernels).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

LAUNCH_S = 2e-6
LATENCY_S = 650e-9
ILP = 2
SM_BYTES_PER_S = 64 * 1.755e9


@dataclass(frozen=True)
class Machine:
    name: str
    hbm: float  # bytes/s
    fp32: float = 67e12
    tf32: float = 495e12
    bf16: float = 989e12
    sms: int = 132
    smem: int = 228 * 1024
    regs: int = 65536
    threads: int = 2048
    blocks: int = 32

    def peak(self, engine: str) -> float:
        """FLOP/s of an engine: 'simt' (float32 CUDA cores), 'tf32x3', 'tc16' (bf16/fp16 MMA)."""
        return {"simt": self.fp32, "tf32x3": self.tf32 / 3, "tc16": self.bf16}[engine]


H100 = Machine("H100 SXM", hbm=3.35e12)
H200 = Machine("H200", hbm=4.8e12)


def blocks_per_sm(m: Machine, threads: int, regs: int, shared: int) -> int:
    """Resident blocks of one kernel on an SM: the tightest of the thread, block, register
    (allocated per warp in 256-register units) and shared-memory (plus 1 KB reserved) limits."""
    warps = math.ceil(threads / 32)
    per_warp = math.ceil(max(regs, 1) * 32 / 256) * 256
    by_regs = m.regs // (per_warp * warps) if regs else m.blocks
    by_smem = m.smem // (shared + 1024) if shared else m.blocks
    return max(0, min(m.blocks, m.threads // max(threads, 1), by_regs, by_smem))


@dataclass
class Launch:
    """One kernel launch as designed: what it moves and computes, and how it is laid out."""
    kernel: str
    bytes: float  # bytes it moves to and from HBM, re-reads and intermediates included
    flops: float = 0.0
    engine: str = "simt"
    blocks: int = 1
    threads: int = 128
    regs: int = 32
    shared: int = 0
    load_bytes: int = 4  # per thread per load instruction: 4 scalar float32, 16 for 128-bit


def launch_time(m: Machine, ln: Launch) -> dict:
    """Modelled seconds of one launch and what binds it."""
    per_sm = blocks_per_sm(m, ln.threads, ln.regs, ln.shared)
    if per_sm == 0:
        return {"s": math.inf, "limit": "does not fit an SM", "waves": math.inf, "occupancy": 0.0}
    slots = m.sms * per_sm
    waves = ln.blocks / slots
    active = min(m.sms, ln.blocks)
    resident = min(per_sm, math.ceil(ln.blocks / m.sms))
    warps = resident * math.ceil(ln.threads / 32)
    inflight = warps * 32 * ln.load_bytes * ILP
    bw = min(m.hbm, active * min(inflight / LATENCY_S, SM_BYTES_PER_S))
    t_mem = ln.bytes / bw if ln.bytes else 0.0
    tail = math.ceil(waves) / waves if waves >= 1 else m.sms / active
    t_flop = ln.flops / m.peak(ln.engine) * tail if ln.flops else 0.0
    limit = "HBM" if bw >= m.hbm else ("SMs used" if active < m.sms else "bytes in flight")
    if t_flop > t_mem:
        limit = f"{ln.engine} FLOPs" + ("" if tail == 1 else f", {waves:.2f} waves")
    return {"s": LAUNCH_S + max(t_mem, t_flop), "limit": limit, "waves": waves,
            "occupancy": warps / (m.threads // 32)}


def bound_time(m: Machine, nbytes: float, flops: float, engine: str) -> tuple[float, str]:
    """The roofline: compulsory bytes at the HBM rate or the FLOPs at the best engine's peak."""
    t_mem, t_flop = nbytes / m.hbm, (flops / m.peak(engine) if flops else 0.0)
    return (t_mem, "HBM") if t_mem >= t_flop else (t_flop, engine)
