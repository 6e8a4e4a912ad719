"""Rounding a float32 tile to the output's dtype when it is stored.

Triton's interpreter (TRITON_INTERPRET=1, the CPU test runs) converts float32 to bfloat16
by dropping the low 16 bits, round-toward-zero, where a GPU's conversion rounds to nearest
even: a bfloat16 result came out with twice the error of "float32, rounded once". Under
the interpreter, bfloat16 stores round here with integer ops instead; compiled kernels keep
the hardware conversion (the branch is a compile-time constant)."""
from __future__ import annotations

import os

import triton
import triton.language as tl

_INTERPRET = tl.constexpr(os.environ.get("TRITON_INTERPRET", "0") == "1")


@triton.jit
def _bf16_rtne(v):
    bits = v.to(tl.float32).to(tl.uint32, bitcast=True)
    up = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    up = tl.where(v != v, 0x7FC0, up)  # a NaN's low bits must not carry it to inf
    return up.to(tl.uint16).to(tl.bfloat16, bitcast=True)


@triton.jit
def to_out(v, ptr):
    """v converted to the element type of ptr, rounded to nearest even."""
    if _INTERPRET:
        if ptr.dtype.element_ty == tl.bfloat16:
            return _bf16_rtne(v)
        else:
            return v.to(ptr.dtype.element_ty)
    else:
        return v.to(ptr.dtype.element_ty)
