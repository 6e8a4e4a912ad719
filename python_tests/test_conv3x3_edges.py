"""conv3x3 and conv3x3_layernorm2d at the edges issue 31 found: non-finite weight taps that
meet only the zero padding, zero sizes on every backend and at the private schemas, meta
tensors and wrong dtypes there, half inputs (computed in float32, rounded once), the
result's dtype with mixed inputs, and the weight and bias gradients at any thread count."""
import pytest
import torch
import torch.nn.functional as F

import sr_ops
from sr_ops import reference


def direct(x, w, b):
    """The float64 direct convolution, the padded zeros multiplied as any input (0 * inf = NaN)."""
    return F.conv2d(F.pad(x.double(), (1, 1, 1, 1)), w.double(), b.double())


def direct_norm(x, w, b, nw, nb, eps=1e-6, gelu=False):
    z = direct(x, w, b)
    return reference.layernorm2d(F.gelu(z) if gelu else z, nw.double(), nb.double(), eps)


# two 3 -> 24 channel maps of 17 x 19: big enough that float32 F.conv2d (oneDNN) skips the padded taps.
SHAPE = (2, 3, 24, 17, 19)


def maps(B, Cin, Cout, H, W):
    return torch.randn(B, Cin, H, W), torch.randn(Cout, Cin, 3, 3) / 3, torch.randn(Cout)


@pytest.mark.parametrize("value", [float("inf"), float("nan")], ids=["inf", "nan"])
@pytest.mark.parametrize("tap", range(9))
def test_non_finite_weight_tap_meets_the_padding(cpu_backend, tap, value, seed):
    x, w, b = maps(*SHAPE)
    w[5, 2, tap // 3, tap % 3] = value
    nw, nb = torch.ones(SHAPE[2]), torch.zeros(SHAPE[2])
    for cl in (False, True):
        xi = x.contiguous(memory_format=torch.channels_last) if cl else x
        want = ~direct(x, w, b).isfinite()
        assert torch.equal(~sr_ops.conv3x3(xi, w, b).isfinite(), want)
        want = ~direct_norm(x, w, b, nw, nb).isfinite()
        assert torch.equal(~sr_ops.conv3x3_layernorm2d(xi, w, b, nw, nb).isfinite(), want)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")], ids=["inf", "-inf", "nan"])
def test_non_finite_x_on_the_borders(cpu_backend, value, seed):
    B, Cin, Cout, H, W = SHAPE
    for y, xx in [(0, 0), (0, W - 1), (H - 1, 0), (H - 1, W - 1), (0, 8), (9, 0), (H - 1, 7), (6, W - 1)]:
        x, w, b = maps(*SHAPE)
        x[0, 1, y, xx] = value
        want = ~direct(x, w, b).isfinite()
        assert torch.equal(~sr_ops.conv3x3(x, w, b).isfinite(), want)
        nw, nb = torch.ones(Cout), torch.zeros(Cout)
        want = ~direct_norm(x, w, b, nw, nb, gelu=True).isfinite()
        assert torch.equal(~sr_ops.conv3x3_layernorm2d(x, w, b, nw, nb, gelu=True).isfinite(), want)


EMPTY = [(0, 4, 3, 5, 6), (2, 4, 3, 0, 6), (2, 4, 3, 5, 0), (2, 0, 3, 0, 0)]


@pytest.mark.parametrize("case", EMPTY + [(2, 4, 0, 5, 6)])
def test_conv3x3_zero_sizes(backend, case):
    x, w, b = (t.requires_grad_() for t in maps(*case))
    out = sr_ops.conv3x3(x, w, b)
    assert out.shape == (case[0], case[2], case[3], case[4]) and out.dtype == torch.float32
    gx, gw, gb = torch.autograd.grad(out, (x, w, b), torch.ones_like(out), allow_unused=True)
    assert torch.equal(gx, torch.zeros_like(x)) and torch.equal(gw, torch.zeros_like(w))
    assert torch.equal(gb, torch.zeros_like(b))
    assert torch.ops.sr_ops.conv3x3(x, w, b).shape == out.shape


@pytest.mark.parametrize("case", EMPTY)
def test_conv3x3_layernorm2d_zero_sizes(backend, case):
    x, w, b = maps(*case)
    nw, nb = torch.ones(case[2]), torch.zeros(case[2])
    args = [t.requires_grad_() for t in (x, w, b, nw, nb)]
    out = sr_ops.conv3x3_layernorm2d(*args, 1e-6, True)
    assert out.shape == (case[0], case[2], case[3], case[4]) and out.dtype == torch.float32
    grads = torch.autograd.grad(out, args, torch.ones_like(out))
    for g, t in zip(grads, args):
        assert torch.equal(g, torch.zeros_like(t))
    assert torch.ops.sr_ops.conv3x3_layernorm2d(*args, 1e-6, False).shape == out.shape


def _private_schemas():
    if "cpu" not in sr_ops.available_backends():
        pytest.skip("extension not built")
    return torch.ops.sr_ops._conv3x3_fwd, torch.ops.sr_ops._conv3x3_layernorm2d_fwd


@pytest.mark.parametrize("case", EMPTY + [(2, 4, 0, 5, 6)])
def test_private_schemas_zero_sizes(case):
    conv, fused = _private_schemas()
    x, w, b = maps(*case)
    assert conv(x, w, b).shape == (case[0], case[2], case[3], case[4])
    if case[2] == 0:
        with pytest.raises(ValueError, match="weight must have at least one output channel"):
            fused(x, w, b, b, b, 1e-6, False)
    else:
        assert fused(x, w, b, b, b, 1e-6, False).shape == (case[0], case[2], case[3], case[4])


def test_private_schemas_reject_meta_and_wrong_dtypes():
    conv, fused = _private_schemas()
    x, w, b = maps(1, 4, 3, 5, 6)
    for args, exc, match in [
        ((x.to("meta"), w.to("meta"), b.to("meta")), ValueError, "x must be a CPU or CUDA tensor, got meta"),
        ((x, w.to("meta"), b), ValueError, "weight must be a CPU or CUDA tensor, got meta"),
        ((x.int(), w.int(), b.int()), TypeError, "x must be a floating-point tensor, got torch.int32"),
        ((x, w.double(), b), TypeError, "takes float32 x, weight and bias"),
        ((x.half(), w.half(), b.half()), TypeError, "takes float32 x, weight and bias"),
    ]:
        with pytest.raises(exc, match=match):
            conv(*args)
        with pytest.raises(exc, match=match):
            fused(*args, args[2], args[2], 1e-6, True)
    with pytest.raises(ValueError, match="norm_weight must be a CPU or CUDA tensor"):
        fused(x, w, b, b.to("meta"), b, 1e-6, True)
    with pytest.raises(TypeError, match="norm_weight must be float32"):
        fused(x, w, b, b.int(), b, 1e-6, True)


def test_custom_ops_reject_mixed_dtypes():
    x, w, b = maps(1, 4, 3, 5, 6)
    with pytest.raises(TypeError, match="must share a dtype"):
        torch.ops.sr_ops.conv3x3(x, w.double(), b)
    with pytest.raises(TypeError, match="must share a dtype"):
        torch.ops.sr_ops.conv3x3_layernorm2d(x, w, b, b.double(), b, 1e-6, False)


def test_result_has_x_dtype(seed):  # float64 computation: the reference, automatically
    x, w, b = maps(1, 4, 3, 5, 6)
    out = sr_ops.conv3x3(x, w.double(), b)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, direct(x, w, b).float(), rtol=1e-6, atol=1e-6)
    out = sr_ops.conv3x3(x.double(), w, b.half())
    assert out.dtype == torch.float64
    nw, nb = torch.rand(3) + 0.5, torch.randn(3)
    out = sr_ops.conv3x3_layernorm2d(x, w, b.double(), nw, nb)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, direct_norm(x, w, b, nw, nb).float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("gelu", [False, True], ids=["norm", "gelu-norm"])
@pytest.mark.parametrize("backend_name", ["reference", "triton", None], ids=["reference", "triton", "auto"])
def test_half_inputs_rounded_once(backend_name, gelu, dtype, seed):
    if backend_name is not None and backend_name not in sr_ops.available_backends():
        pytest.skip(f"no {backend_name} backend here")
    # a large mean against the spread: a half convolution rounded before the norm loses it
    x, w, b = maps(1, 8, 12, 6, 7)
    b = b + 60
    nw, nb = torch.rand(12) + 0.5, torch.randn(12) * 0.1
    args = [t.to(dtype) for t in (x, w, b, nw, nb)]
    with sr_ops.use_backend(backend_name) if backend_name else torch.no_grad():
        got = sr_ops.conv3x3_layernorm2d(*args, 1e-6, gelu)
    assert got.dtype == dtype
    want = direct_norm(*args, gelu=gelu)
    once = direct_norm(*args, gelu=gelu).float().to(dtype)  # exact, rounded once
    f32 = reference.conv3x3_layernorm2d(*(t.float() for t in args), 1e-6, gelu).to(dtype)
    floor = max((once.double() - want).abs().max().item(), (f32.double() - want).abs().max().item())
    assert (got.double() - want).abs().max().item() <= 1.5 * floor


def _grads_at(threads, fn, args, g):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return torch.autograd.grad(fn(*args), args, g)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("deterministic", [True, False], ids=["deterministic", "default"])
@pytest.mark.parametrize("fused", [False, True], ids=["conv3x3", "conv3x3_layernorm2d"])
@pytest.mark.parametrize("shape", [(2, 8, 12, 30, 37), (1, 3, 24, 45, 61)], ids=["8-to-12", "rgb-head"])
def test_gradients_bitwise_equal_at_any_thread_count(shape, fused, deterministic, seed):
    """docs/design.md: the CPU sums in a fixed order at any thread count. ATen's convolution
    backward does not on some shapes (its grad_x of a channels-last 3-channel map here, its
    weight gradient's pixel split on other machines), nor ATen's GELU (an ulp); 2 maps of
    30 x 37 make several chunks of the fixed-order weight kernel."""
    B, Cin, Cout, H, W = shape
    x = torch.randn(B, Cin, H, W).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = (torch.randn(Cout, Cin, 3, 3) / Cin).requires_grad_()
    b = torch.randn(Cout).requires_grad_()
    if fused:
        nw, nb = (torch.rand(Cout) + 0.5).requires_grad_(), torch.randn(Cout).requires_grad_()
        args, fn = (x, w, b, nw, nb), lambda *a: sr_ops.conv3x3_layernorm2d(*a, 1e-6, True)
    else:
        args, fn = (x, w, b), sr_ops.conv3x3
    g = torch.randn(B, Cout, H, W)
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    try:
        first, *rest = [_grads_at(t, fn, args, g) for t in (1, 2, 3)]
    finally:
        torch.use_deterministic_algorithms(was)
    for other in rest:
        for a, e in zip(first, other):
            assert torch.equal(a, e), (a.shape, (a - e).abs().max().item())
    if not fused:
        want = torch.autograd.grad(direct(x, w, b), (x, w, b), g.double())
        for a, e in zip(first, want):
            torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-4)


def test_weight_gradient_kernel():
    if "cpu" not in sr_ops.available_backends():
        pytest.skip("extension not built")
    op = torch.ops.sr_ops._conv3x3_bwd_weight
    for B, Cin, Cout, H, W in [(2, 5, 7, 9, 4), (1, 3, 24, 5, 7), (1, 24, 9, 70, 3), (2, 0, 3, 4, 4)]:
        x, g = torch.randn(B, Cin, H, W), torch.randn(B, Cout, H, W)
        gw, gb = op(g, x)
        want = torch.nn.grad.conv2d_weight(x.double(), (Cout, Cin, 3, 3), g.double(), padding=1)
        torch.testing.assert_close(gw.double(), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gb.double(), g.double().sum((0, 2, 3)), rtol=1e-5, atol=1e-5)
    # an inf gradient meets the padded zeros of the border taps: NaN, as the direct sum
    x, g = torch.randn(1, 2, 4, 5), torch.randn(1, 3, 4, 5)
    g[0, 1, 0, 0] = float("inf")
    want = torch.nn.grad.conv2d_weight(F.pad(x.double(), (1, 1, 1, 1)), (3, 2, 3, 3), g.double())
    assert torch.equal(op(g, x)[0].isnan(), want.isnan())
    for case in EMPTY:  # zero sizes: zero gradients of the right shapes
        x, w, b = maps(*case)
        gw, gb = op(torch.randn(case[0], case[2], case[3], case[4]), x)
        assert torch.equal(gw, torch.zeros_like(w)) and torch.equal(gb, torch.zeros_like(b))
    x, g = torch.randn(1, 4, 5, 6), torch.randn(1, 3, 5, 6)
    for args, exc, match in [
        ((g.to("meta"), x.to("meta")), ValueError, "grad must be a CPU or CUDA tensor, got meta"),
        ((g, x.int()), TypeError, "x must be a floating-point tensor, got torch.int32"),
        ((g, x.double()), TypeError, "takes float32 grad and x"),
        ((g[:, :, :4], x), ValueError, r"grad must be \(B, Cout, H, W\) with x's B, H and W"),
        ((g[0], x), ValueError, r"grad must have 4 dims"),
    ]:
        with pytest.raises(exc, match=match):
            op(*args)


def test_gelu_kernel():
    if "cpu" not in sr_ops.available_backends():
        pytest.skip("extension not built")
    op = torch.ops.sr_ops._conv3x3_gelu
    z = torch.randn(2, 5, 3, 7).contiguous(memory_format=torch.channels_last) * 3
    g = torch.randn(2, 5, 3, 7)
    torch.testing.assert_close(op(z), F.gelu(z), rtol=1e-6, atol=1e-6)
    assert op(z).is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(op(z, g), torch.ops.aten.gelu_backward(g, z), rtol=1e-5, atol=1e-6)
    assert op(torch.empty(0, 3)).shape == (0, 3)
    for args, exc, match in [
        ((z.to("meta"),), ValueError, "z must be a CPU or CUDA tensor, got meta"),
        ((z.int(),), TypeError, "z must be a floating-point tensor, got torch.int32"),
        ((z.double(),), TypeError, "takes float32 z"),
        ((z, g.double()), TypeError, "z and grad must share a dtype"),
        ((z, g[:1]), ValueError, "grad must have z's shape"),
    ]:
        with pytest.raises(exc, match=match):
            op(*args)
