"""Instruction facts read from PTX text: what a GPU kernel really does, without a GPU.

The design rules of docs/gpu-roofline.md are stated in these terms (sr_ops/bench/kernel_design.py
holds each kernel to them):

* ``mma``: tensor-core instructions (``mma.sync``, ``wgmma.mma_async``) — FLOP-bound kernels need them;
* ``ld128`` / ``ld64`` / ``ld_scalar``: global loads by width in bits per thread (``ld.global.v4.f32``
  is 128, ``ld.global.v2.f32`` 64); streaming kernels need 128-bit loads of float32 data;
* ``float_atomics``: ``atom``/``red`` adds on float types in global memory — their order varies
  from run to run, so a kernel with one is not deterministic; ``int_atomics`` beside them;
* ``div64``: 64-bit integer division and remainder (``div``/``rem`` on ``s64``/``u64``), about
  70 instructions each on sm_90 (there is no hardware divider), a cost an inner loop must not pay.

Counts are static (instructions in the code, not executions). PTX is what both compilers emit
before ptxas; the facts checked here survive ptxas (it does not turn scalar loads into vector
loads, nor atomics into stores).
"""
from __future__ import annotations

import re

_MMA = re.compile(r"^\s*(?:@!?%\w+\s+)?(?:wgmma\.mma_async|mma\.sync|mma\.sp)", re.M)
# ld.global[.nc][.L1::...][.L2::...][.v2|.v4].<type>  (also ld.global.nc.L1::no_allocate.v4.b32)
_LD = re.compile(r"^\s*(?:@!?%\w+\s+)?ld\.global((?:\.[\w:]+)*)\s", re.M)
_ATOM = re.compile(r"^\s*(?:@!?%\w+\s+)?(?:atom|red)\.global((?:\.[\w:]+)*)\s", re.M)
_DIV64 = re.compile(r"^\s*(?:@!?%\w+\s+)?(?:div|rem)(?:\.\w+)*\.[su]64\s", re.M)
_ENTRY = re.compile(r"^\s*(?:\.visible\s+|\.weak\s+)?\.entry\s+(\S+?)\s*\(", re.M)
_BITS = {"b8": 8, "u8": 8, "s8": 8, "b16": 16, "u16": 16, "s16": 16, "f16": 16, "bf16": 16, "b32": 32, "u32": 32,
         "s32": 32, "f32": 32, "f16x2": 32, "bf16x2": 32, "b64": 64, "u64": 64, "s64": 64, "f64": 64, "b128": 128}
_FLOAT_TYPES = {"f16", "bf16", "f32", "f64", "f16x2", "bf16x2", "noftz"}


def _load_bits(suffixes: str) -> int:
    parts = suffixes.strip(".").split(".")
    vec = next((int(p[1:]) for p in parts if re.fullmatch(r"v[248]", p)), 1)
    width = next((_BITS[p] for p in reversed(parts) if p in _BITS), 32)
    return vec * width


def facts(ptx: str) -> dict:
    """Counts for one kernel's PTX (or a whole module's, summed)."""
    bits = [_load_bits(m.group(1)) for m in _LD.finditer(ptx)]
    atoms = [m.group(1).strip(".").split(".") for m in _ATOM.finditer(ptx)]
    float_atoms = sum(1 for a in atoms if "add" in a and _FLOAT_TYPES & set(a))
    return {
        "mma": len(_MMA.findall(ptx)),
        "ld128": sum(1 for b in bits if b >= 128),
        "ld64": sum(1 for b in bits if b == 64),
        "ld_scalar": sum(1 for b in bits if b < 64),
        "float_atomics": float_atoms,
        "int_atomics": len(atoms) - float_atoms,
        "div64": len(_DIV64.findall(ptx)),
    }


def entries(ptx: str) -> dict[str, str]:
    """A PTX module split into {entry name: its text up to the next entry} (device functions
    that follow an entry are counted with it: nvcc inlines nearly everything)."""
    found = list(_ENTRY.finditer(ptx))
    return {m.group(1): ptx[m.start():found[i + 1].start() if i + 1 < len(found) else len(ptx)]
            for i, m in enumerate(found)}
