"""eca on every backend against the reference: forward, gradients, dtypes, errors."""
import pytest
import torch

import sr_ops
from sr_ops import reference

from _helpers import device_for

# (x shape, k)
CASES = [
    ((1, 64, 16, 16), 3),  # RT4KSR
    ((2, 5, 7, 3), 3),  # batch > 1, odd sizes
    ((3, 6, 1, 9), 5),  # 1-pixel-high maps
    ((2, 1, 4, 5), 3),  # C = 1: only the centre tap sees a channel
    ((2, 3, 5, 5), 7),  # k > C: taps fall wholly outside
    ((1, 9, 2, 2), 1),  # k = 1
    ((2, 4, 1, 1), 3),  # one pixel
]
BIG = ((2, 32, 48, 40), 5)  # past the CPU kernel's threading threshold
# Planes of 4,757 values, past the CPU forward's 4,096-value chunks and not a multiple of its
# 256-value blocks; 7 channels split over the threads, so halos at uneven range ends.
LONG_PLANES = ((2, 7, 67, 71), 5)


def inputs(shape, k, device, dtype=torch.float32, grad=False, weight_shape=None):
    x = torch.randn(shape, dtype=dtype) + torch.randn(shape[0], shape[1], 1, 1, dtype=dtype)
    w = torch.randn(weight_shape or (1, 1, k), dtype=dtype)
    return x.to(device).requires_grad_(grad), w.to(device).requires_grad_(grad)


def reference_with_grads(x, w, g):
    x2, w2 = x.detach().cpu().requires_grad_(), w.detach().cpu().requires_grad_()
    out = reference.eca(x2, w2)
    return (out.detach(), *torch.autograd.grad(out, (x2, w2), g.cpu()))


def check(x, w, rtol=1e-5, atol=1e-5):
    out = sr_ops.eca(x, w)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    g = torch.randn_like(out)
    gx, gw = torch.autograd.grad(out, (x, w), g)
    assert gw.shape == w.shape
    ref, rx, rw = reference_with_grads(x, w, g)
    torch.testing.assert_close(out.cpu(), ref, rtol=rtol, atol=atol)
    torch.testing.assert_close(gx.cpu(), rx, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gw.cpu(), rw, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", CASES)
def test_forward_backward_match_reference(backend, case, seed):
    check(*inputs(*case, device_for(backend), grad=True))


def test_flat_weight(backend, seed):
    check(*inputs((2, 6, 3, 4), 3, device_for(backend), grad=True, weight_shape=(3,)))


def test_large_input(backend, seed):
    if backend == "triton" and device_for(backend).type == "cpu":
        pytest.skip("too slow for the Triton interpreter")
    check(*inputs(*BIG, device_for(backend), grad=True))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_long_planes_any_thread_count(backend, seed, threads):
    if backend == "triton" and device_for(backend).type == "cpu":
        pytest.skip("too slow for the Triton interpreter")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        check(*inputs(*LONG_PLANES, device_for(backend), grad=True))
    finally:
        torch.set_num_threads(before)


def test_non_contiguous_inputs(backend, seed):
    dev = device_for(backend)
    x = torch.randn(5, 9, 2, 6, device=dev).permute(2, 3, 0, 1)  # (2, 6, 5, 9)
    w = torch.randn(1, 1, 10, device=dev)[..., ::2][..., :5]
    assert not x.is_contiguous() and not w.is_contiguous()
    check(x.requires_grad_(), w.requires_grad_())


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
    x, w = inputs(shape, 3, dev)
    x = at_storage_offset(x, offset).requires_grad_()
    w.requires_grad_()
    out = sr_ops.eca(x, w)
    g = at_storage_offset(torch.randn_like(out), 1 - offset)
    gx, gw = torch.autograd.grad(out, (x, w), g)
    ref, rx, rw = reference_with_grads(x, w, g)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx.cpu(), rx, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gw.cpu(), rw, rtol=1e-4, atol=1e-4)


def test_matches_rt4ksr_module(seed):
    """ECA-Net's module: AdaptiveAvgPool2d(1) -> Conv1d(1, 1, k, padding=k//2, bias=False) -> sigmoid."""
    conv = torch.nn.Conv1d(1, 1, 3, padding=1, bias=False)
    x = torch.randn(2, 16, 9, 7)
    y = torch.nn.functional.adaptive_avg_pool2d(x, 1)
    y = conv(y.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
    want = x * torch.sigmoid(y)
    torch.testing.assert_close(sr_ops.eca(x, conv.weight), want)


def test_empty(backend):
    dev = device_for(backend)
    x = torch.zeros(0, 4, 3, 3, device=dev, requires_grad=True)
    w = torch.randn(1, 1, 3, device=dev, requires_grad=True)
    out = sr_ops.eca(x, w)
    out.sum().backward()
    assert out.shape == x.shape and torch.equal(w.grad.cpu(), torch.zeros(1, 1, 3))


def test_gradcheck_float64(backend, seed):
    dev = device_for(backend)
    for shape, k in [((2, 5, 3, 4), 3), ((1, 1, 1, 3), 3), ((2, 3, 2, 2), 5)]:
        args = inputs(shape, k, dev, torch.float64, grad=True)
        assert torch.autograd.gradcheck(sr_ops.eca, args, fast_mode=True)
        assert torch.autograd.gradgradcheck(sr_ops.eca, args, fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_accumulates_in_float(backend, dtype, seed):
    if backend == "triton" and device_for(backend).type == "cpu":
        pytest.skip("the Triton interpreter's half-precision support is not what the GPU runs")
    x, w = inputs((2, 16, 6, 7), 3, device_for(backend), dtype, grad=True)
    out = sr_ops.eca(x, w)
    assert out.dtype == dtype
    g = torch.randn_like(out)
    gx, gw = torch.autograd.grad(out, (x, w), g)
    assert gx.dtype == gw.dtype == dtype
    ref, rx, rw = reference_with_grads(x.float(), w.float(), g.float())
    torch.testing.assert_close(out.float().cpu(), ref, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(gx.float().cpu(), rx, rtol=2e-2, atol=3e-2)
    torch.testing.assert_close(gw.float().cpu(), rw, rtol=3e-2, atol=3e-1)


def test_mixed_dtypes_promote_like_the_reference(backend, seed):
    x, w = inputs((2, 6, 4, 5), 3, device_for(backend))
    out = sr_ops.eca(x, w.double())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.cpu(), reference.eca(x.cpu(), w.double().cpu()))


def test_opcheck(backend, seed):
    dev = device_for(backend)
    for shape, k in [((2, 4, 3, 5), 3), ((1, 1, 2, 2), 1)]:
        x, w = inputs(shape, k, dev, grad=True, weight_shape=(k,))
        torch.library.opcheck(torch.ops.sr_ops.eca.default, (x, w))
        g = torch.randn(shape, device=dev)
        torch.library.opcheck(torch.ops.sr_ops.eca_backward.default, (g, x.detach(), w.detach()))


def test_compiles_without_graph_breaks(seed):
    x, w = inputs((2, 8, 5, 6), 3, "cpu", grad=True)
    fn = torch.compile(lambda a, b: sr_ops.eca(a, b) * 2, backend="aot_eager", fullgraph=True)
    out = fn(x, w)
    out.sum().backward()
    ref, rx, rw = reference_with_grads(x, w, 2 * torch.ones_like(out))
    torch.testing.assert_close(out, 2 * ref)
    torch.testing.assert_close(x.grad, rx, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(w.grad, rw, rtol=1e-4, atol=1e-4)


X, W = torch.randn(2, 4, 3, 3), torch.randn(1, 1, 3)


@pytest.mark.parametrize(
    "args, exc, match",
    [
        (([[1.0]], W), TypeError, "x must be a torch.Tensor"),
        ((X, [1.0, 2.0, 3.0]), TypeError, "conv1d_weight must be a torch.Tensor"),
        ((X.int(), W), TypeError, "x must be a floating"),
        ((X, W.long()), TypeError, "conv1d_weight must be a floating"),
        ((X[0], W), ValueError, "x must have 4 dims"),
        ((X, W[0]), ValueError, r"conv1d_weight must have shape \(1, 1, k\) or \(k,\)"),
        ((X, torch.randn(2, 1, 3)), ValueError, r"conv1d_weight must have shape"),
        ((X, torch.randn(1, 1, 4)), ValueError, "k must be odd"),
        ((X[:, :, :0], W), ValueError, "at least one pixel"),
    ],
)
def test_bad_inputs(backend, args, exc, match):
    args = tuple(a.to(device_for(backend)) if isinstance(a, torch.Tensor) else a for a in args)
    with pytest.raises(exc, match=match):
        sr_ops.eca(*args)


def test_op_rejects_mixed_dtypes_and_unflattened_weight():
    with pytest.raises(TypeError, match="share a dtype"):
        torch.ops.sr_ops.eca(X, W.reshape(3).double())
    with pytest.raises(ValueError, match=r"flattened to \(k,\)"):
        torch.ops.sr_ops.eca(X, W)


def test_cpp_kernel_rejects_bad_shapes_without_crashing():
    if "cpu" not in sr_ops.available_backends():
        pytest.skip("extension not built")
    w = W.reshape(3)
    with pytest.raises(ValueError, match="k odd"):
        torch.ops.sr_ops._eca_fwd(X, torch.randn(4))
    with pytest.raises(TypeError, match="x and conv1d_weight must share a dtype"):
        torch.ops.sr_ops._eca_fwd(X, w.double())
    with pytest.raises(ValueError, match=r"x must have 4 dims \(B, C, H, W\)"):
        torch.ops.sr_ops._eca_fwd(X[0], w)
    with pytest.raises(ValueError, match="at least one pixel"):
        torch.ops.sr_ops._eca_fwd(X[:, :, :0], w)
    with pytest.raises(ValueError, match="grad_out must have x's shape"):
        torch.ops.sr_ops._eca_bwd(X[:1], X, w)


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")], ids=["inf", "-inf", "nan"])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_non_finite_weight_spoils_the_border_channels_too(backend, k, bad):
    """A non-finite tap meets the zero padding at the border channels, where the reference's
    conv1d multiplies it by 0: NaN there too, not a skipped tap (issue 31, item 4)."""
    dev = device_for(backend)
    if backend == "triton" and dev.type == "cpu" and bad == bad:
        pytest.skip("Triton's interpreter: NaN taps stand for all (it multiplies the padding)")
    for C in (1, 2, 3, 6):
        x = torch.rand(2, C, 3, 2, dtype=torch.float64) + 0.5  # positive means: no 0 * inf inside
        for j in range(k):
            w = torch.randn(k, dtype=torch.float64)
            w[j] = bad
            ref = reference.eca(x, w)
            out = sr_ops.eca(x.to(dev), w.to(dev)).cpu()
            assert torch.equal(out.isnan(), ref.isnan()), (C, j)
            assert torch.equal(out.isfinite(), ref.isfinite()), (C, j)


def test_zero_batch_is_empty_and_zero_channels_raise_on_every_face(backend):
    dev = device_for(backend)
    w = torch.randn(3, device=dev)
    out = sr_ops.eca(torch.randn(0, 4, 2, 2, device=dev), w)
    assert out.shape == (0, 4, 2, 2)
    x0 = torch.randn(2, 0, 5, 5, device=dev)
    for call in (lambda: sr_ops.eca(x0, w), lambda: reference.eca(x0, w), lambda: torch.ops.sr_ops.eca(x0, w)):
        with pytest.raises(ValueError, match=r"x must have at least one channel \(eca needs C >= 1\)"):
            call()
