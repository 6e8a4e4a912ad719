"""conv3x3_layernorm2d against layernorm2d(GELU?(conv)) in float64: the CPU epilogue at
RT4KSR's widths, channel counts off the vector width, odd and tiny maps, any thread count,
both layouts, non-finite values; gradients, opcheck, compile, errors."""
import pytest
import torch
import torch.nn.functional as F

import sr_ops
from sr_ops import reference

CASES = [  # (B, Cin, Cout, H, W)
    pytest.param((1, 24, 24, 9, 11), id="rt4ksr-block"),
    pytest.param((1, 12, 24, 6, 8), id="rt4ksr-head"),
    pytest.param((2, 13, 5, 7, 3), id="odd-everything"),
    pytest.param((1, 6, 108, 4, 5), id="wide-cout"),
    pytest.param((1, 3, 17, 2, 131), id="rows-over-two-jobs"),
    pytest.param((1, 2, 1, 1, 1), id="one-channel-one-pixel"),
    pytest.param((1, 0, 3, 3, 4), id="no-input-channels"),
]


def inputs(B, Cin, Cout, H, W, dtype=torch.float32, grad=False):
    x = torch.randn(B, Cin, H, W, dtype=dtype) + 0.5
    w = torch.randn(Cout, Cin, 3, 3, dtype=dtype) / (3 * max(Cin, 1) ** 0.5)
    b = torch.randn(Cout, dtype=dtype) * 0.5
    nw = torch.randn(Cout, dtype=dtype) * 0.5 + 1
    nb = torch.randn(Cout, dtype=dtype) * 0.3
    return tuple(t.requires_grad_(grad) for t in (x, w, b, nw, nb))


def composed(x, w, b, nw, nb, eps=1e-6, gelu=False):
    """The definition in float64, through the references."""
    z = reference.conv3x3(*(t.double() for t in (x, w, b)))
    return reference.layernorm2d(F.gelu(z) if gelu else z, nw.double(), nb.double(), eps)


@pytest.mark.parametrize("gelu", [False, True], ids=["norm", "gelu-norm"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("layout", ["nchw", "channels-last"])
def test_matches_float64_composition(cpu_backend, case, layout, gelu, seed):
    x, w, b, nw, nb = inputs(*case)
    if layout == "channels-last":
        x = x.contiguous(memory_format=torch.channels_last)
    got = sr_ops.conv3x3_layernorm2d(x, w, b, nw, nb, gelu=gelu)
    assert got.shape == (case[0], case[2], case[3], case[4]) and got.dtype == torch.float32
    cl = layout == "channels-last" and not x.is_contiguous()
    assert got.is_contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)
    # the norm scales the convolution's float32 rounding by 1/std: 1e-4, as gelu_layernorm2d's tests
    torch.testing.assert_close(got.double(), composed(x, w, b, nw, nb, gelu=gelu), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("gelu", [False, True], ids=["norm", "gelu-norm"])
@pytest.mark.parametrize("cout", [*range(1, 18), 24, 31, 33])
def test_large_mean_against_the_spread(cpu_backend, cout, gelu, seed):
    """A norm of a conv whose channel mean is 1e2..1e4 times its spread is ill-conditioned in
    float32 for the reference too: the kernel's error against float64 may be a few times the
    float32 reference's own, not more (the padded lanes once cancelled it to 1e3)."""
    x = torch.randn(2, 4, 5, 7)
    w = torch.randn(cout, 4, 3, 3) * 0.2
    nw, nb = torch.rand(cout) + 0.5, torch.randn(cout) * 0.1
    for mean in (1e2, 1e3, 1e4):
        b = mean + torch.randn(cout)
        want = composed(x, w, b, nw, nb, gelu=gelu)
        ref32 = reference.conv3x3_layernorm2d(x, w, b, nw, nb, 1e-6, gelu)
        got = sr_ops.conv3x3_layernorm2d(x, w, b, nw, nb, 1e-6, gelu)
        err, ref_err = ((t.double() - want).abs().max().item() for t in (got, ref32))
        assert err <= 3 * ref_err + 1e-4, (mean, err, ref_err)


@pytest.mark.parametrize("value", [333.3, 12345.678, 0.1, 7.77])
@pytest.mark.parametrize("cout", [1, 2, 4, 8, 16])
def test_zero_variance_with_zero_eps_is_nan(cpu_backend, cout, value):
    # every channel equal (a zero convolution, one bias; a power-of-two Cout keeps the mean
    # exact): 0 / sqrt(0 + 0), NaN as the reference, not norm_bias
    x, w = torch.randn(1, 3, 4, 5), torch.zeros(cout, 3, 3, 3)
    b = torch.full((cout,), value)
    got = sr_ops.conv3x3_layernorm2d(x, w, b, torch.ones(cout), torch.full((cout,), 0.5), 0.0)
    assert got.isnan().all()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_any_thread_count(cpu_backend, threads, seed):
    x, w, b, nw, nb = inputs(1, 24, 24, 67, 171)
    x = x.contiguous(memory_format=torch.channels_last)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = sr_ops.conv3x3_layernorm2d(x, w, b, nw, nb, 1e-6, True)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(got.double(), composed(x, w, b, nw, nb, gelu=True), rtol=1e-4, atol=1e-4)


def test_non_finite_spoils_its_pixels_only(cpu_backend):
    x, w, b, nw, nb = inputs(1, 10, 9, 8, 9)
    x[0, 1, 0, 0], x[0, 4, 3, 5], x[0, 9, 7, 8] = float("nan"), float("inf"), float("-inf")
    got = sr_ops.conv3x3_layernorm2d(x.contiguous(memory_format=torch.channels_last), w, b, nw, nb, gelu=True)
    want = composed(x, w, b, nw, nb, gelu=True)
    bad = ~want.isfinite()
    assert bad.any() and torch.equal(~got.isfinite(), bad)
    torch.testing.assert_close(got.double()[~bad], want[~bad], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("gelu", [False, True], ids=["norm", "gelu-norm"])
def test_gradients_match_composition(cpu_backend, gelu, seed):
    args = inputs(2, 6, 5, 7, 4, grad=True)
    out = sr_ops.conv3x3_layernorm2d(*args, 1e-6, gelu)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, args, g)
    leaves = [t.detach().double().requires_grad_() for t in args]
    want = torch.autograd.grad(composed(*leaves, gelu=gelu), leaves, g.double())
    for a, e in zip(got, want):
        torch.testing.assert_close(a.double(), e, rtol=1e-3, atol=1e-3)


def test_gradcheck_float64(seed):
    args = inputs(1, 3, 4, 4, 5, torch.float64, grad=True)
    for gelu in (False, True):
        fn = lambda *a: sr_ops.conv3x3_layernorm2d(*a, 0.1, gelu)  # noqa: E731
        assert torch.autograd.gradcheck(fn, args, fast_mode=True)
        assert torch.autograd.gradgradcheck(fn, args, fast_mode=True)
        torch.testing.assert_close(fn(*args), composed(*args, 0.1, gelu), rtol=0, atol=1e-10)


def test_opcheck(cpu_backend, seed):
    for cl, gelu in [(False, False), (True, True)]:
        x, w, b, nw, nb = inputs(1, 5, 8, 6, 7, grad=True)
        if cl:
            x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
        torch.library.opcheck(torch.ops.sr_ops.conv3x3_layernorm2d.default, (x, w, b, nw, nb, 1e-6, gelu))


def test_compiles_without_graph_breaks(seed):
    args = inputs(1, 8, 8, 9, 10, grad=True)
    fn = torch.compile(lambda *a: sr_ops.conv3x3_layernorm2d(*a, 1e-6, True) * 2, backend="aot_eager",
                       fullgraph=True)
    out = fn(*args)
    out.sum().backward()
    leaves = [t.detach().requires_grad_() for t in args]
    want = 2 * composed(*leaves, gelu=True).float()
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-4)
    for t, e in zip(args, torch.autograd.grad(want.sum(), leaves)):
        torch.testing.assert_close(t.grad, e, rtol=1e-3, atol=1e-3)


X, W, B = torch.randn(1, 4, 5, 5), torch.randn(3, 4, 3, 3), torch.randn(3)


@pytest.mark.parametrize(
    "args, exc, match",
    [
        pytest.param((X, W, B, B[:2], B), ValueError, r"norm_weight must have shape \(Cout,\) = \(3,\)",
                     id="short-norm-weight"),
        pytest.param((X, W, B, B, B.view(3, 1)), ValueError, r"norm_bias must have 1 dims \(Cout,\)",
                     id="2d-norm-bias"),
        pytest.param((X, W, B, B, B, -1.0), ValueError, "eps must be a finite non-negative number", id="negative-eps"),
        pytest.param((X, W, B, B, B, 1e-6, 1), TypeError, "gelu must be a bool", id="int-gelu"),
        pytest.param((X, W[:0], B[:0], B[:0], B[:0]), ValueError, "at least one output channel", id="no-cout"),
        pytest.param((X, W[:, :2], B, B, B), ValueError, r"weight must have shape \(Cout, Cin, 3, 3\) with Cin",
                     id="cin-mismatch"),
    ],
)
def test_bad_inputs(args, exc, match):
    with pytest.raises(exc, match=match):
        sr_ops.conv3x3_layernorm2d(*args)


def test_cpp_kernel_rejects_bad_arguments_without_crashing():
    if "cpu" not in sr_ops.available_backends():
        pytest.skip("extension not built")
    op = torch.ops.sr_ops._conv3x3_layernorm2d_fwd
    with pytest.raises(ValueError, match=r"norm_weight must be a CPU tensor of shape \(Cout,\) = \(3,\)"):
        op(X, W, B, B[:2], B, 1e-6, False)
    with pytest.raises(TypeError, match="norm_bias must be float32"):
        op(X, W, B, B, B.double(), 1e-6, False)
    with pytest.raises(ValueError, match="eps must be a finite non-negative number"):
        op(X, W, B, B, B, float("nan"), False)


def test_triton_backend_composes_its_norm_kernels(seed):
    # On a GPU (or Triton's interpreter) the op is F.conv2d then the Triton gelu_layernorm2d.
    if "triton" not in sr_ops.available_backends():
        pytest.skip("no triton backend here")
    dev = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    args = [t.to(dev) for t in inputs(1, 5, 6, 4, 7)]
    with sr_ops.use_backend("triton"):
        got = sr_ops.conv3x3_layernorm2d(*args, 1e-6, True)
    torch.testing.assert_close(got.double().cpu(), composed(*(t.cpu() for t in args), gelu=True), rtol=1e-4, atol=1e-4)
