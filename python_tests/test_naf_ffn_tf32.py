"""naf_ffn's Triton kernels run float32 dots as 3xTF32 (sr_ops/triton/_tf32.py). The
interpreter's tl.dot is a float32 matmul, so here the split is emulated in PyTorch and held
to the bound docs/design.md derives (naf_ffn): per product 3 * 2^-22 relative, plus the
float32 accumulation over 3K + 1 terms."""
from __future__ import annotations

import math
import sys

import pytest
import torch
import triton
import triton.language as tl

import sr_ops
from sr_ops import reference
from sr_ops.triton._tf32 import emulate, rna_tf32, rna_tf32_host, split_host

UT = 2.0**-11  # TF32's unit roundoff: 10 explicit mantissa bits, round to nearest


def _tf32_by_definition(x: torch.Tensor) -> torch.Tensor:
    """Round to 11 significant bits, ties away from zero, in float64 arithmetic (finite x)."""
    d = x.double()
    m, e = torch.frexp(d)  # d = m * 2^e, 0.5 <= |m| < 1
    r = torch.sign(m) * torch.floor(m.abs() * 2**11 + 0.5) / 2**11
    return torch.ldexp(r, e).float()


def _edge_values():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(4096, generator=g) * torch.exp(torch.randn(4096, generator=g) * 10)
    ties = torch.tensor([1 + 2**-11, 1 + 3 * 2**-11, -(1 + 2**-11), 2**-11 * (1 + 2**-11), 1 - 2**-25])
    return torch.cat([v, ties, torch.tensor([0.0, -0.0, 1e-40, -3e-39, 3.0e38])])


@triton.jit
def _round_kernel(x_ptr, o_ptr, n, BLOCK: tl.constexpr):
    i = tl.arange(0, BLOCK)
    tl.store(o_ptr + i, rna_tf32(tl.load(x_ptr + i, mask=i < n)), mask=i < n)


def test_kernel_rounding_is_round_to_nearest_ties_away(backend):
    if backend != "triton":
        pytest.skip("the Triton kernels' rounding")
    x = torch.cat([_edge_values(), torch.tensor([float("inf"), -float("inf"), float("nan")])])
    out = torch.empty_like(x)
    _round_kernel[(1,)](x, out, x.numel(), BLOCK=triton.next_power_of_2(x.numel()))
    assert torch.equal(out.view(torch.int32)[:-1], rna_tf32_host(x).view(torch.int32)[:-1])
    assert out[-1].isnan() and rna_tf32_host(x)[-1].isnan()
    finite = _edge_values()
    finite = finite[finite.abs() >= 2.0**-126]  # subnormals keep the bit pattern's top 10 mantissa bits
    assert torch.equal(rna_tf32_host(finite), _tf32_by_definition(finite))


def _bound_terms(a, b):
    return a.abs().double() @ b.abs().double()


def _realish(C, Fh, P, g):
    """NAFNet-like operands: a LayerNorm'd map (P, C) against W_in^T (C, 2F), and the gate
    (products of two such) against W_out^T (F, C); plus a wide dynamic range pair."""
    x = torch.randn(P, C, generator=g) * 2 + 1
    xn = (x - x.mean(1, keepdim=True)) / x.std(1, unbiased=False, keepdim=True) * (1 + torch.randn(C, generator=g))
    w_in = torch.randn(C, 2 * Fh, generator=g) * C**-0.5
    h = xn @ w_in
    gate = h[:, :Fh] * h[:, Fh:]
    w_out = torch.randn(Fh, C, generator=g) * Fh**-0.5
    wide_a = torch.randn(P, C, generator=g) * torch.exp(torch.randn(P, C, generator=g) * 4)
    wide_b = torch.randn(C, C, generator=g) * torch.exp(torch.randn(C, C, generator=g) * 4)
    plain = (torch.randn(P, C, generator=g), torch.randn(C, C, generator=g))
    return [(xn, w_in), (gate, w_out), (wide_a, wide_b), plain]


@pytest.mark.parametrize("C", [32, 64, 128])
def test_split_products_within_the_derived_bound(C, seed):
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for a, b in _realish(C, C, 256, g):
        exact = a.double() @ b.double()
        scale = _bound_terms(a, b)
        for exact_b, per_product in [(False, 3 * UT**2 * (1 + UT) ** 2), (True, UT**2)]:
            bb = b.to(torch.bfloat16).float() if exact_b else b  # a weight exact in TF32 (2xTF32)
            ref = a.double() @ bb.double() if exact_b else exact
            err = (emulate(a, bb, exact_b) - ref).abs()
            assert (err <= per_product * scale.clamp_min(1e-300) + 1e-300).all(), (C, exact_b)
            worst = max(worst, (err / scale.clamp_min(1e-300)).max().item())
    # The bound is not vacuous: the split does lose bits (plain float32 products would be 2^-24).
    assert 2.0**-30 < worst <= 3 * UT**2 * (1 + UT) ** 2


@pytest.mark.parametrize("C", [32, 64, 128])
def test_accumulated_products_within_the_derived_bound(C, seed):
    """The kernels' dots in float32: cross terms then hi*hi, K terms each, plus the cross sum
    added on its own (mm_w's ROWS form): 3K + 1 roundings at u = 2^-24 here (round to
    nearest; the design note's bound takes 2^-23 for the tensor cores' truncating adds)."""
    g = torch.Generator().manual_seed(seed)
    for a, b in _realish(C, C, 256, g):
        K = a.shape[1]
        ah, ahc, al = split_host(a, 0)
        bh, bhc, bl = split_host(b, 0)
        cross = al @ bhc
        cross = cross + ahc @ bl
        got = (ah @ bh + cross).double()
        err = (got - a.double() @ b.double()).abs()
        n = 3 * K + 1
        gamma = n * 2.0**-24 / (1 - n * 2.0**-24)
        bound = (3 * UT**2 * (1 + UT) ** 2 + gamma) * (1 + 2.0**-9) * _bound_terms(a, b)
        assert (err <= bound).all(), C


def test_kernels_agree_with_the_emulated_split_on_nafnet_widths(backend, seed):
    """The Triton forward in the interpreter runs the split itself: against float64 it stays
    within the bound's scale, far inside the 1e-4 the other tests allow."""
    if backend != "triton":
        pytest.skip("the Triton kernels' split")
    g = torch.Generator().manual_seed(seed)
    C = 64
    y = torch.randn(1, C, 6, 11, generator=g) * 2 + 1
    ws = [torch.randn(C, generator=g) + 1, torch.randn(C, generator=g), torch.randn(2 * C, C, 1, 1, generator=g) / 8,
          torch.randn(2 * C, generator=g), torch.randn(C, C, 1, 1, generator=g) / 8, torch.randn(C, generator=g),
          torch.randn(C, generator=g)]
    out = sr_ops.naf_ffn(y, *ws)
    want = reference.naf_ffn(y.double(), *(w.double() for w in ws))
    err = (out.double() - want).abs().max().item()
    assert err < 64 * 2.0**-20 * max(1.0, want.abs().max().item()), err
    assert math.isfinite(err)


def test_triton_backward_is_its_own_kernel(backend, seed, monkeypatch):
    """The triton entry of naf_ffn's backward was the reference's closed form."""
    if backend != "triton":
        pytest.skip("the Triton backward")
    op = sys.modules["sr_ops.ops.naf_ffn"]

    def refuse(*args):
        raise AssertionError("the reference backward ran")

    monkeypatch.setattr(op, "_reference_backward", refuse)
    g = torch.Generator().manual_seed(seed)
    t = [torch.randn(s, generator=g).requires_grad_() for s in [(1, 8, 5, 7), (8,), (8,), (16, 8, 1, 1), (16,),
                                                                (8, 8, 1, 1), (8,), (8,)]]
    grads = torch.autograd.grad(sr_ops.naf_ffn(*t).sum(), t)
    want = torch.autograd.grad(reference.naf_ffn(*t).sum(), t)
    for a, b in zip(grads, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_kernels_two_dots_match_the_reference(backend, dtype, seed):
    """The public op hands CPU halves to the kernels as float32; here the wrappers get the
    half tensors themselves, as on a GPU (MODE 1: weights exact in TF32, two dots)."""
    if backend != "triton":
        pytest.skip("the Triton kernels' half path")
    from sr_ops.reference.naf_ffn import naf_ffn_backward
    from sr_ops.triton.naf_ffn import naf_ffn_fwd
    from sr_ops.triton.naf_ffn_bwd import naf_ffn_bwd

    g = torch.Generator().manual_seed(seed)
    C, Fh = 8, 8
    args = [torch.randn(s, generator=g).to(dtype) for s in [(1, C, 5, 7), (C,), (C,), (2 * Fh, C), (2 * Fh,),
                                                             (C, Fh), (C,), (C,)]]
    want = reference.naf_ffn(*(a.double() if a.dim() != 2 else a.double()[:, :, None, None] for a in args))
    out = naf_ffn_fwd(*args, 1e-6)
    assert out.dtype == dtype
    tol = 2.0**-8 if dtype == torch.float16 else 2.0**-5
    torch.testing.assert_close(out.double(), want, rtol=tol, atol=tol)
    grad = torch.randn(args[0].shape, generator=g).to(dtype)
    got = naf_ffn_bwd(grad, *args, 1e-6)
    ref = naf_ffn_backward(grad.double(), *(a.double() for a in args), 1e-6)
    for a, b in zip(got, ref):
        assert a.dtype == dtype
        torch.testing.assert_close(a.double(), b, rtol=4 * tol, atol=4 * tol * max(1.0, b.abs().max().item()))
