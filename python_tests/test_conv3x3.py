"""conv3x3 against F.conv2d(padding=1) in float64: the CPU's Winograd kernel at RT4KSR's
widths, odd and tiny maps, channel counts off the kernel's vector width, rows longer than
one job, any thread count, both layouts, non-finite values; gradients, opcheck, compile,
errors."""
import pytest
import torch
import torch.nn.functional as F

import sr_ops

CASES = [  # (B, Cin, Cout, H, W)
    pytest.param((1, 24, 24, 9, 11), id="rt4ksr-block"),
    pytest.param((1, 12, 24, 6, 8), id="rt4ksr-head"),
    pytest.param((1, 24, 48, 5, 7), id="rt4ksr-x2-upsample"),
    pytest.param((1, 24, 108, 4, 6), id="rt4ksr-x3-upsample"),
    pytest.param((2, 13, 5, 7, 3), id="odd-everything"),
    pytest.param((1, 3, 17, 2, 131), id="rows-over-two-jobs"),
    pytest.param((1, 1, 1, 1, 1), id="one-pixel"),
    pytest.param((1, 9, 8, 1, 4), id="one-row"),
    pytest.param((1, 8, 16, 3, 1), id="one-column"),
]


def inputs(B, Cin, Cout, H, W, dtype=torch.float32, grad=False):
    x = torch.randn(B, Cin, H, W, dtype=dtype) + 0.5  # an offset, so the bias-free part is not centred
    w = torch.randn(Cout, Cin, 3, 3, dtype=dtype) / (3 * max(Cin, 1) ** 0.5)
    b = torch.randn(Cout, dtype=dtype)
    return tuple(t.requires_grad_(grad) for t in (x, w, b))


def oracle(x, w, b):
    if x.shape[1] == 0:  # F.conv2d returns no channels here; the sum over none is the bias
        return b.double().view(1, -1, 1, 1).expand(x.shape[0], -1, *x.shape[2:])
    return F.conv2d(x.double(), w.double(), b.double(), padding=1)


def assert_float32_close(got, x, w, b):
    """Within float32 rounding of the exact result: the error allowed per output is a few
    ulp of the sum of |x| |w| it adds up (what any summation order may lose)."""
    want = oracle(x, w, b)
    scale = F.conv2d(x.double().abs(), w.double().abs(), b.double().abs(), padding=1) + 1e-30
    err = ((got.double() - want).abs() / scale).max().item() if want.numel() else 0.0
    assert err < 3e-6, err


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("layout", ["nchw", "channels-last"])
def test_matches_float64_convolution(cpu_backend, case, layout, seed):
    x, w, b = inputs(*case)
    if layout == "channels-last":
        x = x.contiguous(memory_format=torch.channels_last)
    got = sr_ops.conv3x3(x, w, b)
    assert got.shape == (case[0], case[2], case[3], case[4]) and got.dtype == torch.float32
    cl = layout == "channels-last" and not x.is_contiguous()
    assert got.is_contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)
    assert_float32_close(got, x, w, b)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_any_thread_count(cpu_backend, threads, seed):
    # 70 tile rows of 96 tiles: several jobs per row and per thread, a half tile at the end.
    x, w, b = inputs(1, 24, 24, 139, 191)
    x = x.contiguous(memory_format=torch.channels_last)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = sr_ops.conv3x3(x, w, b)
    finally:
        torch.set_num_threads(before)
    assert_float32_close(got, x, w, b)


def test_non_contiguous_inputs(cpu_backend, seed):
    x = torch.randn(6, 7, 2, 5).permute(2, 3, 0, 1)  # (2, 5, 6, 7), neither layout
    w = torch.randn(4, 5, 3, 3, 2)[..., 1]
    b = torch.randn(8)[::2]
    assert not (x.is_contiguous() or w.is_contiguous() or b.is_contiguous())
    assert_float32_close(sr_ops.conv3x3(x, w, b), x, w, b)


def test_non_finite_where_the_convolution_is(cpu_backend):
    x, w, b = inputs(1, 10, 9, 8, 9)
    x[0, 1, 0, 0], x[0, 4, 3, 5], x[0, 9, 7, 8] = float("nan"), float("inf"), float("-inf")
    x[0, 2, 5, 2] = float("inf")
    got = sr_ops.conv3x3(x.contiguous(memory_format=torch.channels_last), w, b)
    want = oracle(x, w, b)
    bad = ~want.isfinite()
    assert bad.any() and torch.equal(~got.isfinite(), bad)
    torch.testing.assert_close(got.double()[~bad], want[~bad], rtol=1e-5, atol=1e-5)


def test_empty_maps(cpu_backend):
    for B, Cin in [(0, 4), (2, 0)]:
        x, w, b = inputs(B, Cin, 3, 4, 5)
        x, w, b = (t.requires_grad_() for t in (x, w, b))
        got = sr_ops.conv3x3(x.contiguous(memory_format=torch.channels_last), w, b)
        torch.testing.assert_close(got.double(), oracle(x, w, b))
        g = torch.randn_like(got)
        gx, gw, gb = torch.autograd.grad(got, (x, w, b), g)
        assert gx.shape == x.shape and gw.shape == w.shape
        torch.testing.assert_close(gb, g.sum((0, 2, 3)))


def test_gradients_match_conv2d(cpu_backend, seed):
    x, w, b = inputs(2, 6, 5, 7, 4, grad=True)
    out = sr_ops.conv3x3(x, w, b)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, w, b), g)
    want = torch.autograd.grad(F.conv2d(x, w, b, padding=1), (x, w, b), g)
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e)


def test_gradcheck_float64(seed):
    args = inputs(1, 3, 2, 4, 5, torch.float64, grad=True)
    assert torch.autograd.gradcheck(sr_ops.conv3x3, args, fast_mode=True)
    assert torch.autograd.gradgradcheck(sr_ops.conv3x3, args, fast_mode=True)
    got = sr_ops.conv3x3(*args)
    torch.testing.assert_close(got, oracle(*args), rtol=0, atol=1e-12)


def test_mixed_dtypes_promote_then_take_x_dtype(seed):
    x, w, b = inputs(1, 4, 3, 5, 5)
    out = sr_ops.conv3x3(x.half(), w, b.double())  # computed in float64, rounded once to x's dtype
    assert out.dtype == torch.float16
    torch.testing.assert_close(out, oracle(x.half(), w, b).half(), rtol=0, atol=0)


def test_opcheck(cpu_backend, seed):
    for cl in (False, True):
        x, w, b = inputs(1, 5, 8, 6, 7, grad=True)
        if cl:
            x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
        torch.library.opcheck(torch.ops.sr_ops.conv3x3.default, (x, w, b))


def test_compiles_without_graph_breaks(seed):
    x, w, b = inputs(1, 8, 8, 9, 10, grad=True)
    fn = torch.compile(lambda *a: F.gelu(sr_ops.conv3x3(*a)), backend="aot_eager", fullgraph=True)
    out = fn(x, w, b)
    out.sum().backward()
    leaves = [t.detach().requires_grad_() for t in (x, w, b)]
    want = F.gelu(F.conv2d(*leaves, padding=1))
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    for got, e in zip((x.grad, w.grad, b.grad), torch.autograd.grad(want.sum(), leaves)):
        torch.testing.assert_close(got, e, rtol=1e-5, atol=1e-5)


X, W, B = torch.randn(1, 4, 5, 5), torch.randn(3, 4, 3, 3), torch.randn(3)


@pytest.mark.parametrize(
    "args, exc, match",
    [
        pytest.param((X[0], W, B), ValueError, r"x must have 4 dims \(B, Cin, H, W\)", id="3d-x"),
        pytest.param((X, W[:, :3], B), ValueError, r"weight must have shape \(Cout, Cin, 3, 3\) with Cin = x.shape",
                     id="cin-mismatch"),
        pytest.param((X, W[..., :2, :2], B), ValueError, r"weight must have shape \(Cout, Cin, 3, 3\)", id="2x2"),
        pytest.param((X, W, B[:2]), ValueError, r"bias must have shape \(Cout,\) = \(3,\)", id="short-bias"),
        pytest.param((X.int(), W, B), TypeError, "x must be a floating-point tensor", id="int-x"),
        pytest.param((X, W, None), TypeError, "bias must be a torch.Tensor", id="no-bias"),
    ],
)
def test_bad_inputs(args, exc, match):
    with pytest.raises(exc, match=match):
        sr_ops.conv3x3(*args)


def test_cpp_kernel_rejects_bad_arguments_without_crashing():
    if "cpu" not in sr_ops.available_backends():
        pytest.skip("extension not built")
    with pytest.raises(TypeError, match="takes float32 x, weight and bias"):
        torch.ops.sr_ops._conv3x3_fwd(X.double(), W.double(), B.double())
    with pytest.raises(ValueError, match=r"weight must have shape \(Cout, Cin, 3, 3\)"):
        torch.ops.sr_ops._conv3x3_fwd(X, W[:, :3], B)
    with pytest.raises(ValueError, match=r"bias must have shape \(Cout,\)"):
        torch.ops.sr_ops._conv3x3_fwd(X, W, B[:2])
    with sr_ops.use_backend("cpu"), pytest.raises(RuntimeError, match="float64 not supported"):
        sr_ops.conv3x3(X.double(), W.double(), B.double())
