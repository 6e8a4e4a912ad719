"""Float32 matrix products on tensor cores at float32-level accuracy: 3xTF32, split by hand.

Each float32 operand x is split into x_hi = rna_tf32(x) and x_lo = rna_tf32(x - x_hi) (rna:
round to nearest, ties away from zero, at 10 explicit mantissa bits, what PTX's
cvt.rna.tf32.f32 does) and the product is lo*hi + hi*lo + hi*hi, three TF32 dots, small terms
first, all accumulated in float32; lo*lo is dropped. docs/design.md (naf_ffn) derives the
bound. Splitting here rather than with tl.dot(input_precision="tf32x3") buys two things:

* non-finite operands: with Triton's split, an inf x has x_lo = inf - inf = NaN and a finite
  y with y_lo = 0 gives inf * 0 = NaN in hi*lo, so an inf result comes out NaN. Here x_lo is
  0 and the cross terms see x_hi with its non-finite values zeroed ("hic"), so only hi*hi
  carries them, exactly as the float32 product does;
* the interpreter (TRITON_INTERPRET=1) runs the very same split: its tl.dot is a float32
  matmul, exact on TF32-valued operands up to the accumulation, so the tests see the split's
  rounding rather than a plain float32 product.

Operands already exact in TF32 (float16 and bfloat16 weights: 11 and 8 significant bits,
exponent range inside float32's) need no lo part: two dots. float64 has no tensor-core form:
MODE 2 multiplies and sums in registers (correctness only; gradcheck)."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

SPLIT3, EXACT_W, F64 = 0, 1, 2


def mode_for(dtype: torch.dtype) -> int:
    if dtype == torch.float64:
        return F64
    return EXACT_W if dtype in (torch.float16, torch.bfloat16) else SPLIT3


@triton.jit
def rna_tf32(x):
    """x rounded to TF32 (10 explicit mantissa bits), ties away from zero; NaN kept as it is
    (a NaN's low bits would otherwise carry into the sign)."""
    bits = x.to(tl.uint32, bitcast=True)
    r = (((bits + 0x1000) >> 13) << 13).to(tl.float32, bitcast=True)
    return tl.where(x == x, r, x)


@triton.jit
def _bad_rows(x):
    """[M] flags: the rows of x [M, K] holding an inf or a NaN."""
    return tl.max(tl.where(tl.abs(x) < float("inf"), 0, 1), axis=1) > 0


@triton.jit
def mm_w(a, w_hi, w_hic, w_lo, acc, MODE: tl.constexpr, ROWS: tl.constexpr):
    """acc + a @ w: a [M, K] float32 activations split here, w [K, N] split on the host
    (split_host). The cross terms must not see an inf (inf * 0 = NaN where the plain product
    is inf). ROWS (for a wide K): the cross terms go to their own [M, N] sum, dropped on the
    rows of a that hold a non-finite value (those rows' hi*hi carries it); else (a narrow K)
    a's hi enters them with its infs zeroed, one more [M, K] tile. MODE 1 (w exact) has no
    w_lo term, and a_lo is finite: nothing to guard."""
    if MODE == 2:
        acc += tl.sum(a[:, :, None] * w_hi[None, :, :], axis=1)
    else:
        a_hi = rna_tf32(a)
        fin = tl.abs(a_hi) < float("inf")
        if MODE == 1:
            acc = tl.dot(tl.where(fin, rna_tf32(a - a_hi), 0.0), w_hic, acc, input_precision="tf32")
            acc = tl.dot(a_hi, w_hi, acc, input_precision="tf32")
        elif ROWS:
            cross = tl.dot(rna_tf32(a - a_hi), w_hic, tl.zeros(acc.shape, acc.dtype), input_precision="tf32")
            cross = tl.dot(a_hi, w_lo, cross, input_precision="tf32")
            acc = tl.dot(a_hi, w_hi, acc, input_precision="tf32")
            acc += tl.where(_bad_rows(a)[:, None], 0.0, cross)
        else:
            a_hic = tl.where(fin | (a_hi != a_hi), a_hi, 0.0)
            acc = tl.dot(tl.where(fin, rna_tf32(a - a_hi), 0.0), w_hic, acc, input_precision="tf32")
            acc = tl.dot(a_hic, w_lo, acc, input_precision="tf32")
            acc = tl.dot(a_hi, w_hi, acc, input_precision="tf32")
    return acc


@triton.jit
def mm(a, b, acc, MODE: tl.constexpr):
    """acc + a @ b, both activations, both split (three dots in every float mode): the cross
    terms in their own sum, dropped on a's rows and b's columns that hold a non-finite value."""
    if MODE == 2:
        acc += tl.sum(a[:, :, None] * b[None, :, :], axis=1)
    else:
        a_hi = rna_tf32(a)
        b_hi = rna_tf32(b)
        cross = tl.dot(rna_tf32(a - a_hi), b_hi, tl.zeros(acc.shape, acc.dtype), input_precision="tf32")
        cross = tl.dot(a_hi, rna_tf32(b - b_hi), cross, input_precision="tf32")
        acc = tl.dot(a_hi, b_hi, acc, input_precision="tf32")
        bad = _bad_rows(a)[:, None] | _bad_rows(tl.trans(b))[None, :]
        acc += tl.where(bad, 0.0, cross)
    return acc


def rna_tf32_host(x: torch.Tensor) -> torch.Tensor:
    """rna_tf32 in PyTorch, for float32 tensors (the same bits as the kernels')."""
    bits = x.contiguous().view(torch.int32).to(torch.int64)
    sign = bits & ~0x7FFFFFFF
    mag = ((bits & 0x7FFFFFFF) + 0x1000) & ~0x1FFF
    r = torch.where(x.isnan(), torch.zeros_like(bits), mag | sign).to(torch.int32).view(torch.float32)
    return torch.where(x.isnan(), x, r)


def split_host(w: torch.Tensor, mode: int):
    """The (hi, hic, lo) of a weight tensor for mm_w, float32 (float64 for MODE 2, as it is)."""
    if mode == F64:
        return w, w, w
    w = w.to(torch.float32)
    hi = rna_tf32_host(w)
    fin = hi.isfinite()
    hic = torch.where(fin | hi.isnan(), hi, 0.0)
    lo = torch.where(fin, rna_tf32_host(torch.where(fin, w - hi, 0.0)), 0.0) if mode == SPLIT3 else hic
    return hi, hic, lo


def emulate(a: torch.Tensor, b: torch.Tensor, exact_b: bool = False) -> torch.Tensor:
    """The three (two, for an exact b) TF32 products of a [M, K] @ b [K, N] float32, as the
    kernels form them, summed in float64: the split's own error, without the accumulation's."""
    ah, ahc, al = split_host(a, SPLIT3)
    bh, bhc, bl = split_host(b, SPLIT3)
    d = torch.float64
    out = al.to(d) @ bhc.to(d) + ah.to(d) @ bh.to(d)
    return out if exact_b else out + ahc.to(d) @ bl.to(d)


def block(n: int, lo: int = 16) -> int:
    return max(lo, triton.next_power_of_2(n))
