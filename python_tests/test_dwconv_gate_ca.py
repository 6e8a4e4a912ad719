"""dwconv_gate_ca on every backend against the reference: forward, gradients, errors."""
import pytest
import torch

import sr_ops
from sr_ops import reference

from _helpers import device_for

# (B, C, H, W, k, gate)
CASES = [
    (1, 4, 8, 8, 3, True),
    (2, 6, 5, 7, 3, True),  # odd sizes, batch > 1
    (2, 6, 5, 7, 5, False),
    (3, 4, 1, 9, 3, True),  # one pixel high: only the middle tap row is inside
    (1, 3, 1, 1, 5, False),  # one pixel, odd C without the gate
    (2, 8, 6, 3, 5, True),  # W smaller than k
]
BIG = (2, 32, 24, 40, 3, True)  # past the CPU kernel's threading threshold


def weights(C, k, gate, device, dtype=torch.float32, grad=False):
    Cg = C // 2 if gate else C
    ws = [torch.randn(C, 1, k, k, dtype=dtype) / k, torch.randn(C, dtype=dtype),
          torch.randn(Cg, Cg, 1, 1, dtype=dtype) / Cg ** 0.5, torch.randn(Cg, dtype=dtype)]
    return [w.to(device).requires_grad_(grad) for w in ws]


def inputs(case, device, dtype=torch.float32, grad=False):
    B, C, H, W, k, gate = case
    x = (torch.randn(B, C, H, W, dtype=dtype) + 0.5).to(device).requires_grad_(grad)
    return x, weights(C, k, gate, device, dtype, grad), gate


def reference_with_grads(x, ws, gate, g):
    leaves = [t.detach().cpu().requires_grad_() for t in (x, *ws)]
    out = reference.dwconv_gate_ca(*leaves, gate=gate)
    return (out.detach(), *torch.autograd.grad(out, leaves, g.cpu()))


def check_all(x, ws, gate, rtol=1e-4, atol=1e-4):
    out = sr_ops.dwconv_gate_ca(x, *ws, gate=gate)
    Cg = x.shape[1] // 2 if gate else x.shape[1]
    assert out.shape == (x.shape[0], Cg, *x.shape[2:]) and out.dtype == x.dtype and out.device == x.device
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, *ws), g)
    ref, *rgrads = reference_with_grads(x, ws, gate, g)
    torch.testing.assert_close(out.cpu(), ref, rtol=rtol, atol=atol)
    for name, a, b in zip(("x", "dw_weight", "dw_bias", "ca_weight", "ca_bias"), grads, rgrads):
        torch.testing.assert_close(a.cpu(), b, rtol=rtol, atol=atol, msg=lambda m: f"grad {name}: {m}")


def at_storage_offset(t, offset):
    # A contiguous copy of t whose data starts `offset` elements into its storage: at offset 1
    # the pointer is not 16-byte aligned, so the GPU kernels take their scalar path.
    buf = torch.zeros(t.numel() + offset, dtype=t.dtype, device=t.device)
    return buf[offset:].view(t.shape).copy_(t)


# H * W a multiple of 8 (the 128-bit GPU kernels for every dtype; rows of 6 wrap inside a
# pack), W not a multiple of 4, H * W odd; each at storage offset 0 and 1 (the scalar kernels).
@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("case", [(2, 4, 4, 6, 3, True), (1, 3, 8, 5, 5, False), (2, 4, 3, 7, 3, True)],
                         ids=["hw-x8", "w-odd", "hw-odd"])
def test_storage_offset_and_row_lengths(backend, case, offset, seed):
    x, ws, gate = inputs(case, device_for(backend))
    check_all(at_storage_offset(x, offset).requires_grad_(), [w.requires_grad_() for w in ws], gate)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:4])) + f"_k{c[4]}_gate{int(c[5])}")
def test_forward_backward_match_reference(backend, case, seed):
    x, ws, gate = inputs(case, device_for(backend), grad=True)
    check_all(x, ws, gate)


def test_large_input(backend, seed):
    if backend == "triton" and device_for(backend).type == "cpu":
        pytest.skip("too slow for the Triton interpreter")
    x, ws, gate = inputs(BIG, device_for(backend), grad=True)
    check_all(x, ws, gate, rtol=1e-4, atol=2e-4)


def test_non_contiguous_inputs(backend, seed):
    dev = device_for(backend)
    x = torch.randn(5, 7, 6, 2, device=dev).permute(3, 2, 0, 1)  # (2, 6, 5, 7)
    ws = weights(6, 3, True, dev)
    ws[0] = torch.randn(6, 1, 3, 3, 2, device=dev)[..., 0]  # strided dw_weight
    ws[2] = torch.randn(3, 3, device=dev).t()[:, :, None, None]
    assert not x.is_contiguous() and not ws[0].is_contiguous() and not ws[2].is_contiguous()
    x.requires_grad_()
    ws = [w.requires_grad_() for w in ws]
    check_all(x, ws, True)


def test_gradcheck_float64(backend, seed):
    dev = device_for(backend)
    for case in [(2, 4, 3, 5, 3, True), (1, 3, 1, 4, 5, False)]:
        x, ws, gate = inputs(case, dev, torch.float64, grad=True)
        fn = lambda *a: sr_ops.dwconv_gate_ca(*a, gate=gate)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x, *ws), fast_mode=True)
    if backend == "triton" and dev.type == "cpu":
        # Second order is the reference's closed form on every backend (checked on the others);
        # in the interpreter it would rerun the Triton first-order kernels for ~60 s.
        return
    assert torch.autograd.gradgradcheck(fn, (x, *ws), fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(backend, dtype, seed):
    if backend == "triton" and device_for(backend).type == "cpu":
        pytest.skip("the Triton interpreter's half-precision support is not what the GPU runs")
    x, ws, gate = inputs((2, 8, 6, 7, 3, True), device_for(backend), dtype)
    out = sr_ops.dwconv_gate_ca(x, *ws, gate=gate)
    assert out.dtype == dtype
    ref = reference.dwconv_gate_ca(x.float().cpu(), *[w.float().cpu() for w in ws], gate=gate)
    torch.testing.assert_close(out.float().cpu(), ref, rtol=3e-2, atol=3e-2)


def test_mixed_dtypes_promote(backend, seed):
    dev = device_for(backend)
    x, ws, gate = inputs((1, 4, 3, 3, 3, True), dev)
    ws = [w.double() for w in ws]
    out = sr_ops.dwconv_gate_ca(x, *ws, gate=gate)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.cpu(), reference.dwconv_gate_ca(x.double().cpu(), *[w.cpu() for w in ws]).float())


def test_empty(backend):
    dev = device_for(backend)
    x, ws, gate = inputs((0, 4, 3, 3, 3, True), dev, grad=True)
    out = sr_ops.dwconv_gate_ca(x, *ws, gate=gate)
    assert out.shape == (0, 2, 3, 3)
    out.sum().backward()
    assert all(float(w.grad.abs().sum()) == 0 for w in ws)


def test_opcheck(backend, seed):
    dev = device_for(backend)
    for case in [(2, 4, 3, 5, 3, True), (1, 3, 4, 4, 5, False)]:
        x, ws, gate = inputs(case, dev, grad=True)
        torch.library.opcheck(torch.ops.sr_ops.dwconv_gate_ca.default, (x, *ws, gate))
        g = torch.randn(x.shape[0], ws[3].shape[0], *x.shape[2:], device=dev)
        torch.library.opcheck(torch.ops.sr_ops.dwconv_gate_ca_backward.default,
                              (g, x.detach(), *[w.detach() for w in ws], gate))


def test_compiles_without_graph_breaks(seed):
    x, ws, gate = inputs((2, 4, 5, 6, 3, True), "cpu", grad=True)
    fn = torch.compile(lambda *a: sr_ops.dwconv_gate_ca(*a) * 2, backend="aot_eager", fullgraph=True)
    out = fn(x, *ws)
    out.sum().backward()
    ref, rx, *_ = reference_with_grads(x, ws, gate, 2 * torch.ones_like(out))
    torch.testing.assert_close(out, 2 * ref)
    torch.testing.assert_close(x.grad, rx, rtol=1e-4, atol=1e-4)


X = torch.randn(2, 4, 5, 5)
DW, DB, CW, CB = torch.randn(4, 1, 3, 3), torch.randn(4), torch.randn(2, 2, 1, 1), torch.randn(2)


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        (([[1.0]], DW, DB, CW, CB), {}, TypeError, "x must be a torch.Tensor"),
        ((X.int(), DW, DB, CW, CB), {}, TypeError, "x must be a floating"),
        ((X, DW, DB.long(), CW, CB), {}, TypeError, "dw_bias must be a floating"),
        ((X[0], DW, DB, CW, CB), {}, ValueError, "x must have 4 dims"),
        ((X, torch.randn(4, 1, 2, 2), DB, CW, CB), {}, ValueError, "kernel size must be odd"),
        ((X, DW[:3], DB, CW, CB), {}, ValueError, "dw_weight must be \\(C, 1, k, k\\)"),
        ((X, torch.randn(4, 2, 3, 3), DB, CW, CB), {}, ValueError, "dw_weight must be \\(C, 1, k, k\\)"),
        ((X, DW, DB[:3], CW, CB), {}, ValueError, "dw_bias must have shape \\(C,\\)"),
        ((X[:, :3], DW[:3], DB[:3], CW, CB), {}, ValueError, "even number of channels"),
        ((X, DW, DB, torch.randn(4, 4, 1, 1), CB), {}, ValueError, "ca_weight must be \\(C', C', 1, 1\\)"),
        ((X, DW, DB, CW, CB), {"gate": False}, ValueError, "ca_weight must be .* C' = 4"),
        ((X, DW, DB, CW, CB[:1]), {}, ValueError, "ca_bias must have shape"),
        ((X, DW, DB, CW, CB), {"gate": 1}, TypeError, "gate must be a bool"),
    ],
)
def test_bad_inputs(backend, args, kwargs, exc, match):
    args = tuple(a.to(device_for(backend)) if isinstance(a, torch.Tensor) else a for a in args)
    with pytest.raises(exc, match=match):
        sr_ops.dwconv_gate_ca(*args, **kwargs)


def test_op_rejects_mixed_dtypes():
    with pytest.raises(TypeError, match="x and ca_weight must share a dtype"):
        torch.ops.sr_ops.dwconv_gate_ca(X, DW, DB, CW.double(), CB, True)


def test_cpp_kernel_rejects_bad_shapes_without_crashing():
    if "cpu" not in sr_ops.available_backends():
        pytest.skip("extension not built")
    with pytest.raises(ValueError, match="k odd"):
        torch.ops.sr_ops._dwconv_gate_ca_fwd(X, torch.randn(4, 1, 2, 2), DB, CW, CB, True)
    with pytest.raises(ValueError, match="even"):
        torch.ops.sr_ops._dwconv_gate_ca_fwd(X[:, :3], DW[:3], DB[:3], CW, CB, True)
    with pytest.raises(ValueError, match="ca_weight"):
        torch.ops.sr_ops._dwconv_gate_ca_fwd(X, DW, DB, CW, CB, False)
    with pytest.raises(TypeError, match="x and dw_weight must share a dtype"):
        torch.ops.sr_ops._dwconv_gate_ca_fwd(X, DW.double(), DB, CW, CB, True)
    with pytest.raises(ValueError, match="grad_out must"):
        torch.ops.sr_ops._dwconv_gate_ca_bwd(X, X, DW, DB, CW, CB, True)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")], ids=["inf", "-inf", "nan"])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_non_finite_tap_spoils_the_border_pixels_too(backend, k, bad, channels_last):
    """A non-finite depthwise tap meets the zero padding at the border, where the reference's
    conv2d multiplies it by 0 (NaN): every output it feeds is non-finite, as in the
    reference, not a skipped tap (issue 31, item 4)."""
    dev = device_for(backend)
    configs = list(zip(((2, True), (3, False), (4, True), (8, False)), ((1, 3), (4, 1), (1, 1), (3, 4))))
    taps = range(k * k)
    if backend == "triton" and dev.type == "cpu":  # the interpreter: ~0.1 s a call
        if bad == bad:
            pytest.skip("Triton's interpreter: NaN taps stand for all (it multiplies the padding)")
        configs, taps = configs[:1], range(k)  # one row high: the first row of taps meets only padding
    # one row or column: the taps off it meet nothing but padding
    for (C, gate), (H, W) in configs:
        x = torch.rand(2, C, H, W, dtype=torch.float64) + 0.5
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for t in taps:
            ws = weights(C, k, gate, "cpu", torch.float64)
            ws[0][C - 1, 0, t // k, t % k] = bad
            ref = reference.dwconv_gate_ca(x, *ws, gate=gate)
            out = sr_ops.dwconv_gate_ca(x.to(dev), *[w.to(dev) for w in ws], gate=gate).cpu()
            assert torch.equal(out.isnan(), ref.isnan()), (C, gate, t)
            assert torch.equal(out.isfinite(), ref.isfinite()), (C, gate, t)


@pytest.mark.parametrize("shape", [(0, 4, 3, 3), (2, 4, 0, 3), (2, 4, 3, 0)], ids=["B0", "H0", "W0"])
@pytest.mark.parametrize("gate", [True, False])
def test_zero_sizes_give_empty_results_on_every_face(backend, shape, gate):
    """B, H or W = 0: an empty output of the right shape and zero gradients, from the public
    op, the custom op and the reference alike (issue 31, item 5)."""
    dev = device_for(backend)
    x = torch.randn(shape, device=dev, requires_grad=True)
    ws = weights(shape[1], 3, gate, dev, grad=True)
    want = (shape[0], shape[1] // 2 if gate else shape[1], *shape[2:])
    assert reference.dwconv_gate_ca(x.detach().cpu(), *[w.detach().cpu() for w in ws], gate=gate).shape == want
    assert torch.ops.sr_ops.dwconv_gate_ca(x.detach(), *[w.detach() for w in ws], gate).shape == want
    out = sr_ops.dwconv_gate_ca(x, *ws, gate=gate)
    assert out.shape == want
    out.sum().backward()
    assert x.grad.shape == x.shape
    assert all(w.grad is not None and not w.grad.any() for w in ws)


@pytest.mark.parametrize("gate", [True, False])
def test_zero_channels_raise_on_every_face(gate):
    x = torch.randn(2, 0, 3, 3)
    ws = [torch.randn(0, 1, 3, 3), torch.randn(0), torch.randn(0, 0, 1, 1), torch.randn(0)]
    calls = [lambda: sr_ops.dwconv_gate_ca(x, *ws, gate=gate), lambda: reference.dwconv_gate_ca(x, *ws, gate=gate),
             lambda: torch.ops.sr_ops.dwconv_gate_ca(x, *ws, gate)]
    if "cpu" in sr_ops.available_backends():
        calls.append(lambda: torch.ops.sr_ops._dwconv_gate_ca_fwd(x, *ws, gate))
    for call in calls:
        with pytest.raises(ValueError, match=r"x must have at least one channel \(dwconv_gate_ca needs C >= 1\)"):
            call()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_types_round_once(cpu_backend, dtype, seed):
    """float16 / bfloat16 are computed in float32 and rounded once at the end: the error
    against float64 is about that of the float32 result rounded once (issue 31, item 6)."""
    x, ws, gate = inputs((2, 8, 9, 11, 3, True), "cpu", dtype)
    exact = reference.dwconv_gate_ca(x.double(), *[w.double() for w in ws], gate=gate)
    once = reference.dwconv_gate_ca(x.float(), *[w.float() for w in ws], gate=gate).to(dtype)
    out = sr_ops.dwconv_gate_ca(x, *ws, gate=gate)
    assert out.dtype == dtype
    err = (out.double() - exact).abs().max()
    bound = (once.double() - exact).abs().max()
    assert err <= 1.5 * bound, (float(err), float(bound))
