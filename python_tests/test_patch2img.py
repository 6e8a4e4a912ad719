"""patch2img on every backend against the reference and an independent loop."""
import pytest
import torch

import sr_ops
from sr_ops import reference

from _helpers import device_for

# (B, C, H, W, P, T): odd sizes, stride > patch (gaps), stride 1, a single patch,
# batch > 1, IGNN's HR fold (6x6 patches, stride 4) and a non-square map.
CASES = [
    (1, 3, 9, 11, 3, 2),
    (2, 4, 13, 7, 3, 1),
    (1, 2, 17, 12, 2, 5),
    (3, 1, 5, 5, 5, 3),
    (2, 5, 22, 26, 6, 4),
    (1, 3, 8, 31, 4, 4),
]


def grid(n, p, t):
    return (n - p) // t + 1


def loop_patch2img(patches, H, W, P, T):
    """The contract written as plainly as possible, for tiny inputs."""
    B, L, C = patches.shape[:3]
    m2 = grid(W, P, T)
    total = torch.zeros(B, C, H, W, dtype=torch.float64)
    count = torch.zeros(H, W, dtype=torch.float64)
    for q in range(L):
        i, j = divmod(q, m2)
        total[:, :, T * i:T * i + P, T * j:T * j + P] += patches[:, q].double()
        count[T * i:T * i + P, T * j:T * j + P] += 1
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros(()))


def make_patches(B, C, H, W, P, T, device, dtype=torch.float32):
    return torch.randn(B, grid(H, P, T) * grid(W, P, T), C, P, P, device=device, dtype=dtype)


@pytest.mark.parametrize("case", CASES)
def test_reference_matches_loop(case, seed):
    B, C, H, W, P, T = case
    p = make_patches(*case, "cpu", torch.float64)
    torch.testing.assert_close(reference.patch2img(p, (H, W), P, T), loop_patch2img(p, H, W, P, T))


def at_storage_offset(t, offset):
    # A contiguous copy of t whose data starts `offset` elements into its storage (not 16-byte
    # aligned at offset 1).
    buf = torch.zeros(t.numel() + offset, dtype=t.dtype, device=t.device)
    return buf[offset:].view(t.shape).copy_(t)


# Planes of 72 pixels and patches of 16 values (the GPU kernels' 128-bit stores), W odd and
# patches of 9; inputs and gradients at storage offsets 0 and 1.
@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("case", [(2, 3, 8, 9, 4, 2), (1, 2, 7, 9, 3, 2)], ids=["packs", "odd"])
def test_storage_offset_and_lengths(backend, case, offset, seed):
    B, C, H, W, P, T = case
    p = at_storage_offset(make_patches(*case, device_for(backend)), offset).requires_grad_()
    out = sr_ops.patch2img(p, (H, W), P, T)
    g = at_storage_offset(torch.randn_like(out), 1 - offset)
    (grad,) = torch.autograd.grad(out, p, g)
    torch.testing.assert_close(out.cpu(), reference.patch2img(p.detach().cpu(), (H, W), P, T), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad.cpu(), reference.patch2img_backward(g.cpu(), P, T), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_forward_backward_match_reference(backend, case, seed):
    B, C, H, W, P, T = case
    dev = device_for(backend)
    p = make_patches(*case, dev).requires_grad_()
    out = sr_ops.patch2img(p, (H, W), P, T)
    g = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, p, g)
    ref = reference.patch2img(p.detach().cpu(), (H, W), P, T)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad.cpu(), reference.patch2img_backward(g.cpu(), P, T), rtol=1e-5, atol=1e-6)


def test_non_contiguous_input(backend, seed):
    dev = device_for(backend)
    B, C, H, W, P, T = 2, 3, 11, 9, 3, 2
    L = grid(H, P, T) * grid(W, P, T)
    base = torch.randn(B, C, L, P, P + 2, device=dev)
    p = base.transpose(1, 2)[..., 1:P + 1]  # (B, L, C, P, P), strided both ways
    assert not p.is_contiguous()
    out = sr_ops.patch2img(p, (H, W), P, T)
    torch.testing.assert_close(out.cpu(), reference.patch2img(p.cpu().contiguous(), (H, W), P, T))


def test_gradcheck_float64(backend, seed):
    dev = device_for(backend)
    for B, C, H, W, P, T in [(2, 2, 7, 6, 3, 2), (1, 1, 6, 9, 2, 3)]:
        p = make_patches(B, C, H, W, P, T, dev, torch.float64).requires_grad_()
        fn = lambda x: sr_ops.patch2img(x, (H, W), P, T)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (p,), fast_mode=True)
        assert torch.autograd.gradgradcheck(fn, (p,), fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_accumulates_in_float(backend, dtype, seed):
    if backend == "triton" and device_for(backend).type == "cpu":
        pytest.skip("the Triton interpreter's half-precision support is not what the GPU runs")
    B, C, H, W, P, T = 1, 3, 14, 10, 4, 2
    p = make_patches(B, C, H, W, P, T, device_for(backend), dtype)
    out = sr_ops.patch2img(p, (H, W), P, T)
    assert out.dtype == dtype
    ref = reference.patch2img(p.float().cpu(), (H, W), P, T)
    torch.testing.assert_close(out.float().cpu(), ref, rtol=1e-2, atol=1e-2)


def test_opcheck(backend, seed):
    dev = device_for(backend)
    for B, C, H, W, P, T in [(2, 3, 9, 7, 3, 2), (1, 2, 5, 5, 5, 1)]:
        p = make_patches(B, C, H, W, P, T, dev).requires_grad_()
        torch.library.opcheck(torch.ops.sr_ops.patch2img.default, (p, [H, W], P, T))
        g = torch.randn(B, C, H, W, device=dev, requires_grad=True)
        torch.library.opcheck(torch.ops.sr_ops.patch2img_backward.default, (g, P, T))


def test_empty_batch(backend):
    """B = 0: an empty image and an empty gradient on every backend (the reference's
    backward reshaped its 0 elements with a -1 and raised)."""
    dev = device_for(backend)
    p = torch.randn(0, grid(7, 3, 2) * grid(6, 3, 2), 2, 3, 3, device=dev, requires_grad=True)
    out = sr_ops.patch2img(p, (7, 6), 3, 2)
    assert out.shape == (0, 2, 7, 6)
    (grad,) = torch.autograd.grad(out, p, torch.randn_like(out))
    assert grad.shape == p.shape


def test_compiles_without_graph_breaks(seed):
    p = make_patches(1, 2, 9, 9, 3, 2, "cpu").requires_grad_()
    fn = torch.compile(lambda x: sr_ops.patch2img(x, (9, 9), 3, 2) * 2, backend="aot_eager", fullgraph=True)
    out = fn(p)
    out.sum().backward()
    torch.testing.assert_close(out, 2 * reference.patch2img(p.detach(), (9, 9), 3, 2))
    torch.testing.assert_close(p.grad, 2 * reference.patch2img_backward(torch.ones_like(out), 3, 2))


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((torch.randn(1, 15, 2, 3, 3), (9, 9), 3, 2), ValueError, "got L=15"),
        ((torch.randn(16, 2, 3, 3), (9, 9), 3, 2), ValueError, "patches must have 5 dims"),
        ((torch.randint(0, 5, (1, 16, 2, 3, 3)), (9, 9), 3, 2), TypeError, "patches must be a floating"),
        (([[1.0]], (9, 9), 3, 2), TypeError, "patches must be a torch.Tensor"),
        ((torch.randn(1, 16, 2, 3, 3), (9, 9), 4, 2), ValueError, "patch_size=4"),
        ((torch.randn(1, 1, 2, 3, 3), (2, 9), 3, 2), ValueError, "must be at most out_size's height and width"),
        ((torch.randn(1, 16, 2, 3, 3), (9, 9), 3, 0), ValueError, "stride must be positive"),
        ((torch.randn(1, 16, 2, 3, 3), 9, 3, 2), TypeError, "out_size must be a pair"),
        ((torch.randn(1, 16, 2, 3, 3), (9, 9), 3, 2.0), TypeError, "stride must be an int"),
    ],
)
def test_bad_inputs(args, exc, match):
    with pytest.raises(exc, match=match):
        sr_ops.patch2img(*args)


def test_cpp_kernel_rejects_bad_shapes_without_crashing():
    if "cpu" not in sr_ops.available_backends():
        pytest.skip("extension not built")
    with pytest.raises(ValueError, match="patches of the grid, got L=15"):
        torch.ops.sr_ops._patch2img_fwd(torch.randn(1, 15, 2, 3, 3), 9, 9, 2)
    with pytest.raises(ValueError, match="stride must be positive"):
        torch.ops.sr_ops._patch2img_bwd(torch.randn(1, 2, 9, 9), 3, 0)
