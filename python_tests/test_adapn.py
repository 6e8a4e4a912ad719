"""adapn on every backend against the reference: forward, gradients, dtypes, errors."""
import pytest
import torch

import sr_ops
from sr_ops import reference

from _helpers import device_for

# (neighbors shape, query shape)
CASES = [
    ((1, 5, 3, 6, 6), (1, 3, 3, 3)),  # IGNN: k=5, 6x6 neighbours of 3x3 queries
    ((2, 3, 4, 2, 5, 5), (2, 3, 2, 3, 3)),  # two leading dims, odd P
    ((3, 1, 1, 4, 4), (3, 1, 4, 4)),  # k = 1, C = 1, P == p
    ((4, 2, 3, 3), (2, 5, 5)),  # no leading dims, query larger than the neighbours
    ((2, 2, 3, 2, 1), (2, 3, 1, 2)),  # two values per patch (the minimum), non-square
    ((5, 4, 7, 9, 9), (5, 7, 3, 3)),  # odd sizes
]
BIG = ((2, 400, 5, 8, 6, 6), (2, 400, 8, 3, 3))  # past the CPU kernel's threading threshold


def inputs(nshape, qshape, device, dtype=torch.float32, grad=False):
    # Per-patch offsets and spreads, as feature maps have, so that the statistics matter.
    z = torch.randn(nshape, dtype=dtype) * (1 + torch.rand(nshape[:-2] + (1, 1), dtype=dtype) * 3) + 2
    q = torch.randn(qshape, dtype=dtype) * 0.5 - 1
    return z.to(device).requires_grad_(grad), q.to(device).requires_grad_(grad)


def reference_with_grads(z, q, g, eps=1e-5):
    z2, q2 = z.detach().cpu().requires_grad_(), q.detach().cpu().requires_grad_()
    out = reference.adapn(z2, q2, eps)
    return (out.detach(), *torch.autograd.grad(out, (z2, q2), g.cpu()))


def at_storage_offset(t, offset):
    # A contiguous copy of t whose data starts `offset` elements into its storage: at offset 1
    # the pointer is not 16-byte aligned, so the GPU kernels take their scalar path.
    buf = torch.zeros(t.numel() + offset, dtype=t.dtype, device=t.device)
    return buf[offset:].view(t.shape).copy_(t)


# Patches of 64 / 16 values (the 128-bit GPU kernels for every dtype) and of 36 / 9 (IGNN's:
# the neighbours a float32 pack, the queries scalar), each at storage offset 0 and 1.
@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("case", [((3, 2, 4, 8, 8), (3, 4, 4, 4)), ((2, 3, 2, 6, 6), (2, 2, 3, 3))],
                         ids=["packs", "ignn"])
def test_storage_offset_and_patch_lengths(backend, case, offset, seed):
    z, q = inputs(*case, device_for(backend))
    z, q = at_storage_offset(z, offset).requires_grad_(), at_storage_offset(q, offset).requires_grad_()
    out = sr_ops.adapn(z, q, 1e-5)
    g = at_storage_offset(torch.randn_like(out), 1 - offset)
    gz, gq = torch.autograd.grad(out, (z, q), g)
    ref, rz, rq = reference_with_grads(z, q, g)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gz.cpu(), rz, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gq.cpu(), rq, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("eps", [1e-5, 0.5])
@pytest.mark.parametrize("case", CASES)
def test_forward_backward_match_reference(backend, case, eps, seed):
    z, q = inputs(*case, device_for(backend), grad=True)
    out = sr_ops.adapn(z, q, eps)
    assert out.shape == z.shape and out.dtype == z.dtype and out.device == z.device
    g = torch.randn_like(out)
    gz, gq = torch.autograd.grad(out, (z, q), g)
    ref, rz, rq = reference_with_grads(z, q, g, eps)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gz.cpu(), rz, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gq.cpu(), rq, rtol=1e-4, atol=1e-4)


def test_large_input(backend, seed):
    if backend == "triton" and device_for(backend).type == "cpu":
        pytest.skip("too slow for the Triton interpreter")
    z, q = inputs(*BIG, device_for(backend), grad=True)
    out = sr_ops.adapn(z, q)
    g = torch.randn_like(out)
    gz, gq = torch.autograd.grad(out, (z, q), g)
    ref, rz, rq = reference_with_grads(z, q, g)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gz.cpu(), rz, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gq.cpu(), rq, rtol=1e-4, atol=1e-4)


def test_large_mean_keeps_its_digits(backend, seed):
    """Patches far from zero: a one-pass float32 variance (E[z^2] - E[z]^2, ~1e6 each, ulp
    0.06) would lose all of var_z = 0.01 here; two passes keep it to ~1e-3."""
    dev = device_for(backend)
    z = (torch.randn(2, 3, 4, 6, 6) * 0.1 + 1000).to(dev)
    q = torch.randn(2, 4, 3, 3).to(dev)
    ref = reference.adapn(z.double().cpu(), q.double().cpu()).float()
    torch.testing.assert_close(sr_ops.adapn(z, q).cpu(), ref, rtol=1e-2, atol=1e-2)


def _run_adapn(backend, z, q, g):
    z, q = z.detach().requires_grad_(), q.detach().requires_grad_()
    with sr_ops.use_backend(backend):
        out = sr_ops.adapn(z, q)
        return [t.detach().double().cpu() for t in (out, *torch.autograd.grad(out, (z, q), g.to(z.dtype)))]


def test_large_mean_as_accurate_as_the_reference(backend):
    """Neighbours at 1e4 x their spread: in float32 the output and both gradients stay
    within 3x the float32 reference's own error against float64 (the fuzz suite's rule).
    Sums of the raw values (ulp 1e-3 at 1e4) gave 3-200x on the CPU and Triton; the
    kernels sum about each patch's first value."""
    dev = device_for(backend)
    gen = torch.Generator().manual_seed(31)
    shapes = [((3, 1, 6, 6), (1, 2, 2)), ((3, 1, 1, 2, 2), (3, 1, 3, 3)), ((5, 3, 4, 4), (3, 5, 5))]
    for i in range(48):
        zs, qs = shapes[i % 3]
        z = torch.rand(zs, generator=gen) * 2 - 1 + 1e4
        q, g = torch.rand(qs, generator=gen) * 8 - 3, torch.randn(zs, generator=gen)
        truth = _run_adapn("reference", z.double(), q.double(), g)
        want = _run_adapn("reference", z, q, g)
        got = _run_adapn(backend, z.to(dev), q.to(dev), g.to(dev))
        for what, a, b, t in zip(("output", "grad neighbors", "grad query"), got, want, truth):
            e_got, e_want = (a - t).abs().max().item(), (b - t).abs().max().item()
            assert e_got <= 3 * e_want + 1e-6, f"case {i} {zs}: {what} error {e_got:.3g}, the reference's {e_want:.3g}"


def test_non_contiguous_inputs(backend, seed):
    dev = device_for(backend)
    z = torch.randn(3, 6, 6, 2, 4, device=dev).permute(3, 4, 0, 1, 2)  # (2, 4, 3, 6, 6)
    q = torch.randn(2, 3, 5, 5, device=dev)[..., 1:4, ::2]  # (2, 3, 3, 3)
    assert not z.is_contiguous() and not q.is_contiguous()
    z.requires_grad_()
    out = sr_ops.adapn(z, q)
    g = torch.randn_like(out)
    (gz,) = torch.autograd.grad(out, z, g)
    ref, rz, _ = reference_with_grads(z.contiguous(), q.contiguous(), g)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gz.cpu(), rz, rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore:var\\(\\)")  # the reference's torch.var warns on empty input
def test_empty_and_k0(backend):
    dev = device_for(backend)
    z, q = torch.zeros(0, 5, 3, 6, 6, device=dev), torch.zeros(0, 3, 3, 3, device=dev)
    assert sr_ops.adapn(z, q).shape == z.shape
    z, q = torch.zeros(2, 0, 3, 6, 6, device=dev, requires_grad=True), torch.randn(2, 3, 3, 3, device=dev,
                                                                                   requires_grad=True)
    out = sr_ops.adapn(z, q)
    (out.sum() + q.sum()).backward()
    assert out.shape == z.shape and torch.equal(q.grad.cpu(), torch.ones(2, 3, 3, 3))


def test_gradcheck_float64(backend, seed):
    dev = device_for(backend)
    for nshape, qshape in [((2, 3, 2, 4, 4), (2, 2, 3, 3)), ((1, 1, 1, 2, 3), (1, 1, 2, 2))]:
        z, q = inputs(nshape, qshape, dev, torch.float64, grad=True)
        for eps in (1e-5, 0.3):
            fn = lambda a, b: sr_ops.adapn(a, b, eps)  # noqa: E731
            assert torch.autograd.gradcheck(fn, (z, q), fast_mode=True)
        assert torch.autograd.gradgradcheck(lambda a, b: sr_ops.adapn(a, b), (z, q), fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_accumulates_in_float(backend, dtype, seed):
    if backend == "triton" and device_for(backend).type == "cpu":
        pytest.skip("the Triton interpreter's half-precision support is not what the GPU runs")
    z, q = inputs((2, 5, 3, 6, 6), (2, 3, 3, 3), device_for(backend), dtype, grad=True)
    out = sr_ops.adapn(z, q)
    assert out.dtype == dtype
    g = torch.randn_like(out)
    gz, gq = torch.autograd.grad(out, (z, q), g)
    assert gz.dtype == gq.dtype == dtype
    ref, rz, rq = reference_with_grads(z.float(), q.float(), g.float())
    torch.testing.assert_close(out.float().cpu(), ref, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(gz.float().cpu(), rz, rtol=2e-2, atol=5e-2)
    torch.testing.assert_close(gq.float().cpu(), rq, rtol=2e-2, atol=1e-1)


def test_mixed_dtypes_promote_like_the_reference(backend, seed):
    dev = device_for(backend)
    z, q = inputs((2, 3, 2, 4, 4), (2, 2, 3, 3), dev)
    q = q.double()
    out = sr_ops.adapn(z, q)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.cpu(), reference.adapn(z.cpu(), q.cpu()))


def test_opcheck(backend, seed):
    dev = device_for(backend)
    for nshape, qshape in [((2, 3, 2, 4, 4), (2, 2, 3, 3)), ((3, 1, 5, 5), (1, 2, 2))]:
        z, q = inputs(nshape, qshape, dev, grad=True)
        torch.library.opcheck(torch.ops.sr_ops.adapn.default, (z, q, 1e-5))
        g = torch.randn(nshape, device=dev)
        torch.library.opcheck(torch.ops.sr_ops.adapn_backward.default, (g, z.detach(), q.detach(), 0.1))


def test_compiles_without_graph_breaks(seed):
    z, q = inputs((2, 5, 3, 6, 6), (2, 3, 3, 3), "cpu", grad=True)
    fn = torch.compile(lambda a, b: sr_ops.adapn(a, b) * 2, backend="aot_eager", fullgraph=True)
    out = fn(z, q)
    out.sum().backward()
    ref, rz, rq = reference_with_grads(z, q, 2 * torch.ones_like(out))
    torch.testing.assert_close(out, 2 * ref)
    torch.testing.assert_close(z.grad, rz, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(q.grad, rq, rtol=1e-4, atol=1e-4)


Z, Q = torch.randn(2, 5, 3, 6, 6), torch.randn(2, 3, 3, 3)


@pytest.mark.parametrize(
    "args, exc, match",
    [
        (([[1.0]], Q), TypeError, "neighbors must be a torch.Tensor"),
        ((Z, Q.long()), TypeError, "query must be a floating"),
        ((Z.int(), Q), TypeError, "neighbors must be a floating"),
        ((Z[0, 0, 0], Q), ValueError, "neighbors must have at least 4 dims"),
        ((Z, Q[0, 0]), ValueError, "query must have at least 3 dims"),
        ((Z, Q[:1]), ValueError, "leading dims and C"),
        ((Z, Q[:, :2]), ValueError, "leading dims and C"),
        ((Z[..., :1, :1], Q), ValueError, "neighbors patches must hold at least 2 values"),
        ((Z, Q[..., :1, :1]), ValueError, "query patches must hold at least 2 values"),
        ((Z, Q, -1.0), ValueError, "eps must be a finite non-negative number"),
        ((Z, Q, True), TypeError, "eps must be a finite non-negative number"),
        ((Z, Q, "1e-5"), TypeError, "eps must be a finite non-negative number"),
        ((Z, Q, float("nan")), ValueError, "eps must be a finite non-negative number"),
        ((Z, Q, float("inf")), ValueError, "eps must be a finite non-negative number"),
    ],
)
def test_bad_inputs(backend, args, exc, match):
    args = tuple(a.to(device_for(backend)) if isinstance(a, torch.Tensor) else a for a in args)
    with pytest.raises(exc, match=match):
        sr_ops.adapn(*args)


def test_op_rejects_mixed_dtypes():
    with pytest.raises(TypeError, match="share a dtype"):
        torch.ops.sr_ops.adapn(Z, Q.double(), 1e-5)


def test_cpp_kernel_rejects_bad_shapes_without_crashing():
    if "cpu" not in sr_ops.available_backends():
        pytest.skip("extension not built")
    with pytest.raises(ValueError, match="leading dims and C"):
        torch.ops.sr_ops._adapn_fwd(Z, Q[:1], 1e-5)
    with pytest.raises(TypeError, match="neighbors and query must share a dtype"):
        torch.ops.sr_ops._adapn_fwd(Z, Q.double(), 1e-5)
    with pytest.raises(ValueError, match="at least 2 values"):
        torch.ops.sr_ops._adapn_fwd(Z[..., :1, :1], Q, 1e-5)
    with pytest.raises(ValueError, match="eps must be a finite non-negative number"):
        torch.ops.sr_ops._adapn_fwd(Z, Q, -1.0)
    with pytest.raises(ValueError, match="grad_out must have neighbors's shape"):
        torch.ops.sr_ops._adapn_bwd(Z[:1], Z, Q, 1e-5)
