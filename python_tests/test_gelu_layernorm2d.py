"""gelu_layernorm2d on every backend against layernorm2d(F.gelu(x)): forward, gradients,
channels-last, non-finite values, the CPU's vector erf, errors."""
import pytest
import torch
import torch.nn.functional as F

import sr_ops
from sr_ops import reference

from _helpers import device_for

CASES = [
    pytest.param((1, 24, 9, 11), id="rt4ksr-width"),
    pytest.param((2, 3, 7, 5), id="batch-odd-sizes"),
    pytest.param((1, 7, 13, 11), id="partial-last-cpu-tile"),
    pytest.param((2, 1, 3, 4), id="one-channel"),
    pytest.param((1, 5, 1, 1), id="one-pixel"),
]


def inputs(shape, device, dtype=torch.float32, grad=False):
    # Around GELU's bend, with per-pixel offsets so the norm's statistics matter.
    x = torch.randn(shape, dtype=dtype) * 1.5 + torch.randn(shape[0], 1, *shape[2:], dtype=dtype)
    w = torch.randn(shape[1], dtype=dtype) * 0.5 + 1
    b = torch.randn(shape[1], dtype=dtype) * 0.3
    return tuple(t.to(device).requires_grad_(grad) for t in (x, w, b))


def composed(x, w, b, eps, approximate):
    """The definition, through layernorm2d's reference."""
    return reference.layernorm2d(F.gelu(x, approximate=approximate), w, b, eps)


def check(x, w, b, eps=1e-6, approximate="none", rtol=1e-4, atol=1e-4):
    out = sr_ops.gelu_layernorm2d(x, w, b, eps, approximate)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, w, b), g)
    # In the inputs' precision (float64 is checked to 1e-10 below). GELU squashes negative
    # values together, and the norm amplifies float32's rounding by 1/std: 1e-4 tolerances.
    leaves = [t.detach().cpu().requires_grad_() for t in (x, w, b)]
    want = composed(*leaves, eps, approximate)
    wgrads = torch.autograd.grad(want, leaves, g.cpu())
    torch.testing.assert_close(out.cpu(), want, rtol=rtol, atol=atol)
    for got, w_ in zip(grads, wgrads):  # closed form vs autograd's chain, amplified alike
        torch.testing.assert_close(got.cpu(), w_, rtol=1e-3, atol=1e-3)
    return out


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("case", CASES)
def test_forward_backward_match_composition(backend, case, approximate, seed):
    check(*inputs(case, device_for(backend), grad=True), approximate=approximate)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [pytest.param((2, 8, 5, 7), id="small"),
                                   pytest.param((1, 24, 90, 160), id="rt4ksr-width-threaded")])
def test_channels_last(backend, shape, approximate, seed):
    if backend == "triton" and device_for(backend).type == "cpu" and shape[1] > 8:
        pytest.skip("the large case is for the CPU kernel's threaded path; the interpreter is slow")
    x, w, b = inputs(shape, device_for(backend))
    x = x.to(memory_format=torch.channels_last).requires_grad_()
    out = check(x, w.requires_grad_(), b.requires_grad_(), approximate=approximate)
    assert not out.is_contiguous() and out.is_contiguous(memory_format=torch.channels_last)


def test_non_contiguous_inputs(backend, seed):
    dev = device_for(backend)
    x = torch.randn(5, 9, 2, 6, device=dev).permute(2, 3, 0, 1)  # (2, 6, 5, 9), neither layout
    w = torch.randn(12, device=dev)[::2]
    b = torch.randn(6, 2, device=dev)[:, 1]
    assert not x.is_contiguous() and not w.is_contiguous() and not b.is_contiguous()
    check(x.requires_grad_(), w.requires_grad_(), b.requires_grad_())


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
def test_non_finite_values_follow_torch(backend, channels_last):
    # gelu(+inf) = inf and gelu(-inf) = NaN (-inf * 0) in torch; a NaN or inf then spoils its
    # pixel's statistics, and only its pixel's.
    dev = device_for(backend)
    x = torch.randn(1, 16, 3, 5, device=dev)
    x[0, 2, 1, 1], x[0, 5, 2, 3], x[0, 7, 0, 4] = float("nan"), float("inf"), float("-inf")
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(16, device=dev), torch.randn(16, device=dev)
    got = sr_ops.gelu_layernorm2d(x, w, b).cpu()
    want = composed(x.cpu(), w.cpu(), b.cpu(), 1e-6, "none")
    torch.testing.assert_close(got, want, equal_nan=True, rtol=1e-5, atol=1e-5)
    finite = torch.ones(3, 5, dtype=torch.bool)
    finite[1, 1] = finite[2, 3] = finite[0, 4] = False
    assert got[0][:, finite].isfinite().all() and got[0][:, ~finite].isnan().all()


def test_cpu_vector_erf_against_float64():
    """The CPU float32 kernel's erf is a rational approximation in vector registers. Read GELU
    back through the op on a dense grid over its whole range (past the clamp at |x| = 4 sqrt 2
    too): channel 0 holds the value, the other 23 hold 0 (GELU 0), and eps is so large that the
    norm is a known linear map. Its error, per max(|x|, 1), must stay within 4x that of torch's
    own float32 GELU against float64."""
    if "cpu" not in sr_ops.available_backends():
        pytest.skip("extension not built")
    v = torch.linspace(-12, 12, 200001, dtype=torch.float64).float()
    x = torch.zeros(1, 24, 1, v.numel())
    x[0, 0, 0] = v
    eps = 1e8
    with sr_ops.use_backend("cpu"):
        out = sr_ops.gelu_layernorm2d(x.contiguous(memory_format=torch.channels_last),
                                      torch.ones(24), torch.zeros(24), eps)
    g64 = F.gelu(v.double())
    var = g64.square() * (23 / 576)  # the 24 values g, 0, ..., 0 about their mean g / 24
    recovered = out[0, 0, 0].double() * torch.sqrt(var + eps) * 24 / 23
    scale = v.double().abs().clamp_min(1)
    ours = ((recovered - g64).abs() / scale).max().item()
    torch_f32 = ((F.gelu(v).double() - g64).abs() / scale).max().item()
    assert ours <= 4 * torch_f32, (ours, torch_f32)


def test_gradcheck_float64(backend, seed):
    dev = device_for(backend)
    for shape in [(2, 4, 3, 5), (1, 1, 1, 3)]:
        args = inputs(shape, dev, torch.float64, grad=True)
        for approximate in ("none", "tanh"):
            fn = lambda *a: sr_ops.gelu_layernorm2d(*a, 0.1, approximate)  # noqa: E731
            assert torch.autograd.gradcheck(fn, args, fast_mode=True)
            assert torch.autograd.gradgradcheck(fn, args, fast_mode=True)


def test_float64_equals_composition(backend, seed):
    x, w, b = inputs((2, 24, 6, 7), device_for(backend), torch.float64)
    got = sr_ops.gelu_layernorm2d(x, w, b).cpu()
    torch.testing.assert_close(got, composed(x.cpu(), w.cpu(), b.cpu(), 1e-6, "none"), rtol=0, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_computes_in_float(backend, dtype, seed):
    if backend == "triton" and device_for(backend).type == "cpu":
        pytest.skip("the Triton interpreter's half-precision support is not what the GPU runs")
    x, w, b = inputs((2, 16, 6, 7), device_for(backend), dtype)
    out = sr_ops.gelu_layernorm2d(x, w, b)
    assert out.dtype == dtype
    want = composed(x.float().cpu(), w.float().cpu(), b.float().cpu(), 1e-6, "none")
    torch.testing.assert_close(out.float().cpu(), want, rtol=2e-2, atol=3e-2)


def test_opcheck(backend, seed):
    dev = device_for(backend)
    for shape, approximate in [((2, 4, 3, 5), "none"), ((1, 3, 2, 2), "tanh")]:
        x, w, b = inputs(shape, dev, grad=True)
        torch.library.opcheck(torch.ops.sr_ops.gelu_layernorm2d.default, (x, w, b, 1e-6, approximate))
    x, w, b = inputs((1, 6, 3, 4), dev, grad=True)
    x = x.detach().to(memory_format=torch.channels_last).requires_grad_()
    torch.library.opcheck(torch.ops.sr_ops.gelu_layernorm2d.default, (x, w, b, 1e-6, "none"))


def test_compiles_without_graph_breaks(seed):
    x, w, b = inputs((2, 8, 5, 6), "cpu", grad=True)
    fn = torch.compile(lambda *a: sr_ops.gelu_layernorm2d(*a) * 2, backend="aot_eager", fullgraph=True)
    out = fn(x, w, b)
    out.sum().backward()
    leaves = [t.detach().requires_grad_() for t in (x, w, b)]
    want = 2 * composed(*leaves, 1e-6, "none")
    wgrads = torch.autograd.grad(want.sum(), leaves)
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-4)
    for got, w_ in zip((x.grad, w.grad, b.grad), wgrads):
        torch.testing.assert_close(got, w_, rtol=1e-4, atol=1e-4)


X, W, B = torch.randn(2, 4, 3, 3), torch.randn(4), torch.randn(4)


@pytest.mark.parametrize(
    "args, exc, match",
    [
        pytest.param((X, W, B, 1e-6, "erf"), ValueError, "approximate must be 'none' or 'tanh'", id="bad-approximate"),
        pytest.param((X, W, B, 1e-6, None), TypeError, "approximate must be 'none' or 'tanh'",
                     id="approximate-none-object"),
        pytest.param((X[0], W, B), ValueError, "x must have 4 dims", id="3d-x"),
        pytest.param((X, W[:3], B), ValueError, r"weight must have shape \(C,\)", id="short-weight"),
        pytest.param((X.int(), W, B), TypeError, "x must be a floating", id="int-x"),
        pytest.param((X, W, B, -1.0), ValueError, "eps must be a finite non-negative number", id="negative-eps"),
    ],
)
def test_bad_inputs(backend, args, exc, match):
    args = tuple(a.to(device_for(backend)) if isinstance(a, torch.Tensor) else a for a in args)
    with pytest.raises(exc, match=match):
        sr_ops.gelu_layernorm2d(*args)


def test_cpp_kernel_rejects_bad_arguments_without_crashing():
    if "cpu" not in sr_ops.available_backends():
        pytest.skip("extension not built")
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        torch.ops.sr_ops._gelu_layernorm2d_fwd(X, W, B, 1e-6, "erf")
    with pytest.raises(ValueError, match=r"weight must have shape \(C,\)"):
        torch.ops.sr_ops._gelu_layernorm2d_fwd(X, W[:3], B, 1e-6, "none")
    with pytest.raises(TypeError, match="x and weight must share a dtype"):
        torch.ops.sr_ops._gelu_layernorm2d_fwd(X, W.double(), B, 1e-6, "none")


@pytest.mark.parametrize("shape", [(0, 4, 3, 5), (2, 4, 0, 5), (1, 4, 3, 0)], ids=["B0", "H0", "W0"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_zero_sizes_give_empty_output_and_zero_gradients(backend, shape, channels_last):
    """Issue 31 item 5's rule, as naf_ffn: B, H or W = 0 is an empty map, not an error."""
    x, w, b = inputs(shape, device_for(backend))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    w.requires_grad_()
    b.requires_grad_()
    out = sr_ops.gelu_layernorm2d(x, w, b)
    assert out.shape == shape
    for name, g, t in zip("xwb", torch.autograd.grad(out, (x, w, b), torch.ones_like(out)), (x, w, b)):
        assert torch.equal(g, torch.zeros_like(t)), f"grad of {name} must be 0"


def test_zero_channels_still_raise():
    with pytest.raises(ValueError, match="x must"):
        sr_ops.gelu_layernorm2d(torch.randn(1, 0, 3, 3), torch.randn(0), torch.randn(0))
