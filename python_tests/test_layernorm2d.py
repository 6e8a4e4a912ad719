"""layernorm2d on every backend against the reference: forward, gradients, dtypes, errors."""
import pytest
import torch

import sr_ops
from sr_ops import reference

from _helpers import device_for

CASES = [
    (1, 64, 16, 16),  # NAFNet width
    (2, 3, 7, 5),  # batch > 1, odd sizes
    (3, 5, 1, 9),  # 1-pixel-high maps
    (2, 1, 4, 3),  # C = 1: every output is the bias
    (1, 7, 13, 11),  # more pixels than one CPU tile, a partial last tile
]
BIG = (2, 32, 48, 40)  # past the CPU kernel's threading threshold


def inputs(shape, device, dtype=torch.float32, grad=False):
    # Per-pixel offsets, as feature maps have, so that the statistics matter.
    x = torch.randn(shape, dtype=dtype) * 2 + torch.randn(shape[0], 1, *shape[2:], dtype=dtype) * 3
    w = torch.randn(shape[1], dtype=dtype) * 0.5 + 1
    b = torch.randn(shape[1], dtype=dtype) * 0.3
    return tuple(t.to(device).requires_grad_(grad) for t in (x, w, b))


def reference_with_grads(x, w, b, g, eps=1e-6):
    leaves = [t.detach().cpu().requires_grad_() for t in (x, w, b)]
    out = reference.layernorm2d(*leaves, eps)
    return (out.detach(), *torch.autograd.grad(out, leaves, g.cpu()))


def check(x, w, b, eps=1e-6, rtol=1e-5, atol=1e-5):
    out = sr_ops.layernorm2d(x, w, b, eps)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, w, b), g)
    ref, *rgrads = reference_with_grads(x, w, b, g, eps)
    torch.testing.assert_close(out.cpu(), ref, rtol=rtol, atol=atol)
    for got, want in zip(grads, rgrads):
        torch.testing.assert_close(got.cpu(), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("eps", [1e-6, 0.5])
@pytest.mark.parametrize("case", CASES)
def test_forward_backward_match_reference(backend, case, eps, seed):
    check(*inputs(case, device_for(backend), grad=True), eps)


@pytest.mark.parametrize("shape", [(1, 2, 1, 1), (2, 3, 5, 7), (1, 4, 9, 9)])
def test_eps_zero_gradients_are_finite(backend, shape, seed):
    # eps = 0 is legal: with distinct channel values the variance is positive and every
    # gradient finite. The Triton backward once took 1/sqrt(0) on its tile's padding pixels
    # (H*W not a multiple of 64), which turned the weight gradient into NaN.
    x, w, b = inputs(shape, device_for(backend), grad=True)
    check(x, w, b, eps=0.0, rtol=1e-4, atol=1e-4)


def test_large_input(backend, seed):
    if backend == "triton" and device_for(backend).type == "cpu":
        pytest.skip("too slow for the Triton interpreter")
    check(*inputs(BIG, device_for(backend), grad=True))


def test_non_contiguous_inputs(backend, seed):
    dev = device_for(backend)
    x = torch.randn(5, 9, 2, 6, device=dev).permute(2, 3, 0, 1)  # (2, 6, 5, 9)
    w = torch.randn(12, device=dev)[::2]
    b = torch.randn(6, 2, device=dev)[:, 1]
    assert not x.is_contiguous() and not w.is_contiguous() and not b.is_contiguous()
    check(x.requires_grad_(), w.requires_grad_(), b.requires_grad_())


def at_storage_offset(t, offset):
    # A contiguous copy of t whose data starts `offset` elements into its storage: at offset 1
    # the pointer is not 16-byte aligned, so the GPU kernels take their scalar path.
    buf = torch.zeros(t.numel() + offset, dtype=t.dtype, device=t.device)
    return buf[offset:].view(t.shape).copy_(t)


# H * W a multiple of 8 (the 128-bit GPU kernels for every dtype), W not a multiple of 4, and
# each at storage offset 0 and 1 (the scalar kernels); with the gradient at the other offset.
@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("shape", [(2, 5, 4, 8), (1, 3, 8, 5), (2, 4, 3, 7)], ids=["hw-x8", "w-odd", "hw-odd"])
def test_storage_offset_and_row_lengths(backend, shape, offset, seed):
    dev = device_for(backend)
    x, w, b = inputs(shape, dev)
    x = at_storage_offset(x, offset).requires_grad_()
    out = sr_ops.layernorm2d(x, w.requires_grad_(), b.requires_grad_(), 1e-6)
    g = at_storage_offset(torch.randn_like(out), 1 - offset)
    grads = torch.autograd.grad(out, (x, w, b), g)
    ref, *rgrads = reference_with_grads(x, w, b, g)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, rgrads):
        torch.testing.assert_close(got.cpu(), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(2, 8, 5, 7), (1, 24, 90, 160)], ids=["small", "rt4ksr-width-threaded"])
def test_channels_last(backend, shape, seed):
    if backend == "triton" and device_for(backend).type == "cpu" and shape[1] > 8:
        pytest.skip("the large case is for the CPU kernel's threaded path; the interpreter is slow")
    x, w, b = inputs(shape, device_for(backend))
    x = (x * 3 + 50).to(memory_format=torch.channels_last).requires_grad_()  # a mean a one-pass variance loses
    check(x, w.requires_grad_(), b.requires_grad_(), rtol=1e-4, atol=1e-4)
    out = sr_ops.layernorm2d(x, w, b)
    assert not out.is_contiguous() and out.is_contiguous(memory_format=torch.channels_last)
    if x.numel() < 10**4:  # the fake's strides too; once is enough (opcheck is slow in the Triton interpreter)
        torch.library.opcheck(torch.ops.sr_ops.layernorm2d.default, (x, w, b, 1e-6))


def test_empty(backend):
    dev = device_for(backend)
    x = torch.zeros(0, 4, 3, 3, device=dev, requires_grad=True)
    w = torch.ones(4, device=dev, requires_grad=True)
    b = torch.zeros(4, device=dev, requires_grad=True)
    out = sr_ops.layernorm2d(x, w, b)
    out.sum().backward()
    assert out.shape == x.shape and torch.equal(w.grad.cpu(), torch.zeros(4))


def test_gradcheck_float64(backend, seed):
    dev = device_for(backend)
    for shape in [(2, 4, 3, 5), (1, 1, 1, 3), (2, 3, 1, 1)]:
        args = inputs(shape, dev, torch.float64, grad=True)
        for eps in (1e-6, 0.3):
            fn = lambda *a: sr_ops.layernorm2d(*a, eps)  # noqa: E731
            assert torch.autograd.gradcheck(fn, args, fast_mode=True)
        assert torch.autograd.gradgradcheck(sr_ops.layernorm2d, args, fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_accumulates_in_float(backend, dtype, seed):
    if backend == "triton" and device_for(backend).type == "cpu":
        pytest.skip("the Triton interpreter's half-precision support is not what the GPU runs")
    x, w, b = inputs((2, 16, 6, 7), device_for(backend), dtype, grad=True)
    out = sr_ops.layernorm2d(x, w, b)
    assert out.dtype == dtype
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, w, b), g)
    assert all(t.dtype == dtype for t in grads)
    ref, *rgrads = reference_with_grads(x.float(), w.float(), b.float(), g.float())
    torch.testing.assert_close(out.float().cpu(), ref, rtol=2e-2, atol=3e-2)
    for got, want in zip(grads, rgrads):
        torch.testing.assert_close(got.float().cpu(), want, rtol=3e-2, atol=2e-1)


def test_mixed_dtypes_promote_like_the_reference(backend, seed):
    x, w, b = inputs((2, 6, 4, 5), device_for(backend))
    out = sr_ops.layernorm2d(x.half(), w, b.double())
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.cpu(), reference.layernorm2d(x.half().cpu(), w.cpu(), b.double().cpu()))


def test_matches_nafnet_layernorm2d(seed):
    """NAFNet's own LayerNorm2d is a per-pixel torch LayerNorm over channels."""
    x, w, b = inputs((2, 12, 5, 6), "cpu")
    want = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (12,), w, b, 1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(sr_ops.layernorm2d(x, w, b), want)


def test_opcheck(backend, seed):
    dev = device_for(backend)
    for shape in [(2, 4, 3, 5), (1, 1, 2, 2)]:
        x, w, b = inputs(shape, dev, grad=True)
        torch.library.opcheck(torch.ops.sr_ops.layernorm2d.default, (x, w, b, 1e-6))
        g = torch.randn(shape, device=dev)
        torch.library.opcheck(torch.ops.sr_ops.layernorm2d_backward.default,
                              (g, x.detach(), w.detach(), b.detach(), 0.1))


def test_compiles_without_graph_breaks(seed):
    x, w, b = inputs((2, 8, 5, 6), "cpu", grad=True)
    fn = torch.compile(lambda *a: sr_ops.layernorm2d(*a) * 2, backend="aot_eager", fullgraph=True)
    out = fn(x, w, b)
    out.sum().backward()
    ref, *rgrads = reference_with_grads(x, w, b, 2 * torch.ones_like(out))
    torch.testing.assert_close(out, 2 * ref)
    for got, want in zip((x.grad, w.grad, b.grad), rgrads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


X, W, B = torch.randn(2, 4, 3, 3), torch.randn(4), torch.randn(4)


@pytest.mark.parametrize(
    "args, exc, match",
    [
        (([[1.0]], W, B), TypeError, "x must be a torch.Tensor"),
        ((X, None, B), TypeError, "weight must be a torch.Tensor"),
        ((X.int(), W, B), TypeError, "x must be a floating"),
        ((X, W, B.long()), TypeError, "bias must be a floating"),
        ((X[0], W, B), ValueError, "x must have 4 dims"),
        ((X, W[:3], B), ValueError, r"weight must have shape \(C,\)"),
        ((X, W, B[None]), ValueError, r"bias must have shape \(C,\)"),
        ((X, W, B, -1.0), ValueError, "eps must be a finite non-negative number"),
        ((X, W, B, True), TypeError, "eps must be a finite non-negative number"),
        ((X, W, B, "1e-6"), TypeError, "eps must be a finite non-negative number"),
        ((X, W, B, float("nan")), ValueError, "eps must be a finite non-negative number"),
        ((X, W, B, float("inf")), ValueError, "eps must be a finite non-negative number"),
    ],
)
def test_bad_inputs(backend, args, exc, match):
    args = tuple(a.to(device_for(backend)) if isinstance(a, torch.Tensor) else a for a in args)
    with pytest.raises(exc, match=match):
        sr_ops.layernorm2d(*args)


def test_op_rejects_mixed_dtypes():
    with pytest.raises(TypeError, match="share a dtype"):
        torch.ops.sr_ops.layernorm2d(X, W.double(), B, 1e-6)


def test_cpp_kernel_rejects_bad_shapes_without_crashing():
    if "cpu" not in sr_ops.available_backends():
        pytest.skip("extension not built")
    with pytest.raises(ValueError, match=r"weight must have shape \(C,\)"):
        torch.ops.sr_ops._layernorm2d_fwd(X, W[:3], B, 1e-6)
    with pytest.raises(TypeError, match="x and weight must share a dtype"):
        torch.ops.sr_ops._layernorm2d_fwd(X, W.double(), B, 1e-6)
    with pytest.raises(ValueError, match=r"x must have 4 dims \(B, C, H, W\)"):
        torch.ops.sr_ops._layernorm2d_fwd(X[0], W, B, 1e-6)
    with pytest.raises(ValueError, match="eps must be a finite non-negative number"):
        torch.ops.sr_ops._layernorm2d_fwd(X, W, B, -1.0)
    with pytest.raises(ValueError, match="grad_out must have x's shape"):
        torch.ops.sr_ops._layernorm2d_bwd(X[:1], X, W, B, 1e-6)
