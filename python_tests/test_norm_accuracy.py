"""The LayerNorm-based ops' per-pixel statistics (docs/design.md, "Every backend agrees with
the reference"): at a channel mean 1e3-1e4x the spread, every backend's output and gradients
stay within 3x the float32 reference's own error against float64 (variances about the mean);
with eps = 0, a pixel whose channels are all equal normalises to NaN, exactly where float64
does (issue 31: sum / C rounded the mean, so x - mean was a tiny non-zero, finite output)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import sr_ops
from sr_ops import reference

OPS = ["layernorm2d", "gelu_layernorm2d", "naf_ffn"]


def _args(op, C, mean, gen, layout):
    """x (2, C, 5, 7) of spread ~1 about ``mean``, and the op's other inputs (float64)."""
    x = mean + torch.randn(2, C, 5, 7, generator=gen, dtype=torch.float64)
    x = x.contiguous(memory_format=layout)
    nw = torch.rand(C, generator=gen, dtype=torch.float64) + 0.5
    nb = torch.randn(C, generator=gen, dtype=torch.float64) * 0.1
    if op != "naf_ffn":
        return [x, nw, nb, 1e-6]
    F = 5
    w_in = torch.randn(2 * F, C, 1, 1, generator=gen, dtype=torch.float64) * C**-0.5
    w_out = torch.randn(C, F, 1, 1, generator=gen, dtype=torch.float64) * F**-0.5
    b_in, b_out = torch.randn(2 * F, generator=gen, dtype=torch.float64) * 0.1, torch.zeros(C, dtype=torch.float64)
    gamma = torch.rand(C, generator=gen, dtype=torch.float64) + 0.5
    return [x, nw, nb, w_in, b_in, w_out, b_out, gamma, 1e-6]


def _run(fn, args, upstream):
    """The output and the gradients of every tensor input, at ``upstream``."""
    args = [a.detach().clone().requires_grad_(True) if isinstance(a, torch.Tensor) else a for a in args]
    out = fn(*args)
    grads = torch.autograd.grad(out, [a for a in args if isinstance(a, torch.Tensor)], upstream.to(out.dtype))
    return [out.detach(), *grads]


def _errors(op, args64, upstream):
    """Per output / gradient: (the backend's float32 error, the float32 reference's error),
    both against the float64 reference."""
    args32 = [a.float() if isinstance(a, torch.Tensor) else a for a in args64]
    truth = _run(getattr(reference, op), args64, upstream)
    ref32 = _run(getattr(reference, op), args32, upstream)
    got = _run(getattr(sr_ops, op), args32, upstream)
    return [((g.double() - t).abs().max().item(), (r.double() - t).abs().max().item(), t.abs().max().item())
            for g, r, t in zip(got, ref32, truth)]


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("C", [13, 32, 64])
@pytest.mark.parametrize("op", OPS)
def test_large_mean_within_3x_the_references_error(backend, op, C, layout):
    gen = torch.Generator().manual_seed(1000 * C + OPS.index(op))
    for mean in (1e3, 1e4):
        args = _args(op, C, mean, gen, layout)
        upstream = torch.randn(args[0].shape, generator=gen, dtype=torch.float64)
        for i, (err, ref_err, scale) in enumerate(_errors(op, args, upstream)):
            # float32's own rounding of the output / gradient values (a naf_ffn output ~ mean)
            floor = 4 * torch.finfo(torch.float32).eps * scale
            assert err <= 3 * ref_err + floor, (op, backend, mean, "output" if i == 0 else f"grad {i - 1}", err,
                                                ref_err)


def _flat(op, C, eps_value, layout):
    gen = torch.Generator().manual_seed(C)
    args = _args(op, C, 0.0, gen, layout)
    x = args[0]
    mask = torch.rand(x.shape[0], 1, *x.shape[2:], generator=gen) < 0.3
    args[0] = x.masked_fill(mask, eps_value).contiguous(memory_format=layout)
    args[-1] = 0.0
    return args, mask


# 0.75, -3.5, 1234.5: C equal values sum exactly in float32, so the float32 reference's mean is
# the value too; 0.1f does not (torch's float32 mean of C copies rounds, and the reference's
# output is finite) while float64 sums it exactly: the kernels' shifted sums give NaN anyway.
F32_TENTH = float(torch.tensor(0.1, dtype=torch.float32))


@pytest.mark.parametrize("value", [0.75, -3.5, 1234.5, F32_TENTH])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("C", [3, 5, 13, 24, 33])
@pytest.mark.parametrize("op", OPS)
def test_zero_eps_flat_pixels_are_nan_where_float64s_are(backend, op, C, layout, value):
    if value == F32_TENTH and (backend == "reference" or (backend == "triton" and op == "naf_ffn")):
        pytest.skip("the float32 reference (naf_ffn's Triton backward too) rounds C * 0.1f")
    if op == "gelu_layernorm2d":  # GELU of a non-zero float32 is no float32 in float64: GELU(0) = 0
        if value != 0.75:
            pytest.skip("one flat value for gelu_layernorm2d: x = 0")
        value = 0.0
    args, mask = _flat(op, C, value, layout)
    upstream = torch.randn(args[0].shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    args32 = [a.float() if isinstance(a, torch.Tensor) else a for a in args]
    truth = _run(getattr(reference, op), args, upstream)
    got = _run(getattr(sr_ops, op), args32, upstream)
    assert truth[0].isnan().any()
    for i, (g, t) in enumerate(zip(got, truth)):
        assert torch.equal(g.isnan(), t.isnan()), (op, backend, "output" if i == 0 else f"grad {i - 1}")


@pytest.mark.parametrize("gelu", [False, True])
@pytest.mark.parametrize("cout", [3, 5, 7, 13])
def test_conv3x3_layernorm2d_zero_eps_flat_is_nan(cpu_backend, cout, gelu):
    # a zero convolution and one bias value: every pixel's Cout values equal (GELU of them too)
    x, w = torch.randn(1, 3, 4, 5), torch.zeros(cout, 3, 3, 3)
    b = torch.full((cout,), F32_TENTH)
    if cpu_backend == "reference" or gelu:
        pytest.skip("the float32 reference rounds Cout * 0.1f; GELU(0.1f) is no float32 in float64")
    got = sr_ops.conv3x3_layernorm2d(x, w, b, torch.ones(cout), torch.full((cout,), 0.5), 0.0, gelu)
    assert got.isnan().all()


SIM_LIB = Path(__file__).resolve().parents[1] / "build" / "cuda_sim" / "sr_ops_cudasim.so"


@pytest.fixture(scope="module")
def sim():
    """The CUDA kernels run on the CPU by the simulator (python_tests/cuda_sim; `make cuda-sim`
    builds it, minutes: skipped until then)."""
    if not SIM_LIB.exists():
        pytest.skip("the CUDA simulator is not built (make cuda-sim)")
    sys.path.insert(0, str(Path(__file__).parent / "cuda_sim"))
    from _build import ops

    return ops()


@pytest.mark.parametrize("C", [13, 64])
def test_cuda_kernels_large_mean_and_flat_pixels(sim, C):
    gen = torch.Generator().manual_seed(C)
    x64, w, b, _ = _args("layernorm2d", C, 1e4, gen, torch.contiguous_format)
    g64 = torch.randn(x64.shape, generator=gen, dtype=torch.float64)
    truth = reference.layernorm2d(x64, w, b, 1e-6)
    want_gx = _run(reference.layernorm2d, [x64, w, b, 1e-6], g64)
    args32 = [t.float() for t in (x64, w, b)]
    ref32 = _run(reference.layernorm2d, [*args32, 1e-6], g64)
    got = [sim._layernorm2d_fwd(*args32, 1e-6), *sim._layernorm2d_bwd(g64.float(), *args32, 1e-6)]
    for i, (g, r, t) in enumerate(zip(got, ref32, [truth, *want_gx[1:]])):
        err, ref_err = ((v.double() - t).abs().max().item() for v in (g, r))
        assert err <= 3 * ref_err + 4 * torch.finfo(torch.float32).eps * t.abs().max().item(), (i, err, ref_err)
    gl_truth = reference.gelu_layernorm2d(x64, w, b, 1e-6)
    gl_ref = reference.gelu_layernorm2d(*args32, 1e-6)
    gl = sim._gelu_layernorm2d_fwd(*args32, 1e-6, "none")
    assert (gl.double() - gl_truth).abs().max() <= 3 * (gl_ref.double() - gl_truth).abs().max() + 1e-5
    flat, mask = _flat("layernorm2d", C, F32_TENTH, torch.contiguous_format)
    flat32 = [t.float() for t in flat[:3]]
    nan64 = _run(reference.layernorm2d, flat, g64)
    out = [sim._layernorm2d_fwd(*flat32, 0.0), *sim._layernorm2d_bwd(g64.float(), *flat32, 0.0)]
    for i, (g, t) in enumerate(zip(out, nan64)):
        assert torch.equal(g.isnan(), t.isnan()), i
