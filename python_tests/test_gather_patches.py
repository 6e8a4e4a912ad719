"""gather_patches on every backend: crops through a dispatch order, gradient, errors."""
import warnings

import pytest
import torch

import sr_ops
from sr_ops import reference

from _helpers import device_for
from _paste_oracle import ascending_paste, dense_windows

# (B, C, H, W, P, T): odd sizes, B > 1, C = 1 and 3, a single patch, gaps (T > P).
CASES = [
    (1, 3, 13, 17, 4, 3),
    (2, 1, 9, 11, 3, 2),
    (3, 3, 6, 6, 6, 2),
    (2, 2, 11, 14, 3, 5),
]


def setup(case, device, dtype=torch.float32):
    B, C, H, W, P, T = case
    img = torch.randn(B, C, H, W, device=device, dtype=dtype)
    _, coords = reference.extract_patches(img, P, T)
    order = torch.randperm(coords.shape[0], device=device)
    return img, coords, order


@pytest.mark.parametrize("case", CASES)
def test_reference_matches_loop(case, seed):
    img, coords, order = setup(case, "cpu", torch.float64)
    P = case[4]
    out = reference.gather_patches(img, coords, order, P)
    for i, q in enumerate(order.tolist()):
        b, r, c = coords[q].tolist()
        assert torch.equal(out[i], img[b, :, r:r + P, c:c + P])


@pytest.mark.parametrize("case", CASES)
def test_forward_backward_match_reference(backend, case, seed):
    img, coords, order = setup(case, device_for(backend))
    img.requires_grad_()
    P = case[4]
    out = sr_ops.gather_patches(img, coords, order, P)
    assert out.is_contiguous()
    g = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, img, g)
    ref = reference.gather_patches(img.detach().cpu(), coords.cpu(), order.cpu(), P)
    assert torch.equal(out.detach().cpu(), ref)
    ref_g = reference.gather_patches_backward(g.cpu(), coords.cpu(), order.cpu(), img.shape)
    torch.testing.assert_close(grad.cpu(), ref_g, rtol=1e-5, atol=1e-6)


def test_matches_indexing_extracted_patches(backend, seed):
    dev = device_for(backend)
    img = torch.randn(2, 3, 15, 12, device=dev)
    patches, coords = sr_ops.extract_patches(img, 5, 4)
    order, _ = sr_ops.class_dispatch(torch.randint(0, 3, (coords.shape[0],), device=dev), 3)
    assert torch.equal(sr_ops.gather_patches(img, coords, order, 5), patches[order])


def test_non_contiguous_inputs(backend, seed):
    dev = device_for(backend)
    img = torch.randn(2, 9, 10, 3, device=dev).permute(0, 3, 1, 2)
    _, coords = reference.extract_patches(img, 3, 2)
    coords_t = coords.t().contiguous().t()  # (N, 3) with strides (1, N)
    order = torch.randperm(coords.shape[0], device=dev).repeat_interleave(2)[::2]
    assert not img.is_contiguous() and not coords_t.is_contiguous() and not order.is_contiguous()
    out = sr_ops.gather_patches(img, coords_t, order, 3)
    assert torch.equal(out.cpu(), reference.gather_patches(img.cpu(), coords.cpu(), order.cpu(), 3))


def test_gradcheck_float64(backend, seed):
    img, coords, order = setup((2, 2, 7, 6, 3, 2), device_for(backend), torch.float64)
    img.requires_grad_()
    fn = lambda x: sr_ops.gather_patches(x, coords, order, 3)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (img,), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (img,), fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(backend, dtype, seed):
    img, coords, order = setup((1, 3, 10, 9, 4, 3), device_for(backend), dtype)
    img.requires_grad_()
    out = sr_ops.gather_patches(img, coords, order, 4)
    want = reference.gather_patches(img.detach().cpu(), coords, order, 4)
    assert out.dtype == dtype and torch.equal(out.detach().cpu(), want)
    g = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, img, g)
    ref_g = reference.gather_patches_backward(g.float().cpu(), coords, order, img.shape)
    torch.testing.assert_close(grad.float().cpu(), ref_g, rtol=1e-2, atol=1e-2)


def test_opcheck(backend, seed):
    img, coords, order = setup((2, 3, 9, 8, 3, 2), device_for(backend))
    img.requires_grad_()
    torch.library.opcheck(torch.ops.sr_ops.gather_patches.default, (img, coords, order, 3))
    g = torch.randn(order.shape[0], 3, 3, 3, device=img.device, requires_grad=True)
    torch.library.opcheck(torch.ops.sr_ops.gather_patches_backward.default, (g, coords, order, list(img.shape)))


@pytest.mark.parametrize("B", [0, 2])
def test_no_patches(backend, B):
    """N = 0 (and B = 0): an empty result, and a zero gradient of img's shape, on every
    backend (the CPU backward rejected B = 0)."""
    dev = device_for(backend)
    img = torch.randn(B, 3, 7, 6, device=dev, requires_grad=True)
    coords, order = torch.zeros(0, 3, dtype=torch.int64, device=dev), torch.zeros(0, dtype=torch.int64, device=dev)
    out = sr_ops.gather_patches(img, coords, order, 3)
    assert out.shape == (0, 3, 3, 3)
    (grad,) = torch.autograd.grad(out, img, torch.randn_like(out))
    assert grad.shape == img.shape and not grad.any()


def test_compiles_without_graph_breaks(seed):
    img, coords, order = setup((1, 2, 9, 9, 3, 2), "cpu")
    img.requires_grad_()
    fn = torch.compile(lambda x: sr_ops.gather_patches(x, coords, order, 3) * 2, backend="aot_eager", fullgraph=True)
    out = fn(img)
    out.sum().backward()
    torch.testing.assert_close(out, 2 * reference.gather_patches(img.detach(), coords, order, 3))
    want = reference.gather_patches_backward(torch.full_like(out, 2.0), coords, order, img.shape)
    torch.testing.assert_close(img.grad, want)


def _bad(**changes):
    img = torch.randn(2, 3, 9, 9)
    coords = torch.tensor([[0, 0, 0], [1, 6, 6], [0, 3, 2]])
    args = dict(img=img, coords=coords, order=torch.tensor([2, 0, 1]), patch_size=3)
    args.update(changes)
    return args


@pytest.mark.parametrize(
    "args, exc, match",
    [
        (_bad(coords=torch.tensor([[0, 0, 0], [1, 7, 6], [0, 3, 2]])), ValueError,
         r"coords row values must lie in \[0, 7\)"),
        (_bad(coords=torch.tensor([[0, 0, 0], [2, 6, 6], [0, 3, 2]])), ValueError,
         r"coords batch values must lie in \[0, 2\)"),
        (_bad(coords=torch.tensor([[0, 0, -1], [1, 6, 6], [0, 3, 2]])), ValueError, "coords col values"),
        (_bad(order=torch.tensor([3, 0, 1])), ValueError, r"order values must lie in \[0, 3\)"),
        (_bad(order=torch.tensor([2, 0])), ValueError, "order must have coords' N=3 entries"),
        (_bad(coords=torch.zeros(3, 2, dtype=torch.int64)), ValueError, r"coords must be \(N, 3\)"),
        (_bad(coords=torch.zeros(3, 3)), TypeError, "coords must be an integer tensor"),
        (_bad(order=torch.zeros(3)), TypeError, "order must be an integer tensor"),
        (_bad(img=torch.randint(0, 3, (2, 3, 9, 9))), TypeError, "img must be a floating"),
        (_bad(img=torch.randn(3, 9, 9)), ValueError, "img must have 4 dims"),
        (_bad(patch_size=10), ValueError, "patch_size must be at most img's height and width"),
        (_bad(patch_size=0), ValueError, "patch_size must be positive"),
    ],
)
def test_bad_inputs(args, exc, match):
    with pytest.raises(exc, match=match):
        sr_ops.gather_patches(**args)


def test_dense_overlap_backward_is_the_same_every_run(backend, seed):
    """Step-1 windows over two paste tiles, in a random order and deterministic mode: the
    backward repeats bit for bit, matches the reference, and on the GPU backends is exactly
    the ascending-order sum (python_tests/_paste_oracle.py)."""
    dev = device_for(backend)
    B, C, H, W, P = 1, 2, 9, 70, 5
    coords, order = dense_windows(B, H, W, P, 1)
    grad = torch.randn(order.shape[0], C, P, P, dtype=torch.float64) * 1e3
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback to the reference
            img = torch.zeros(B, C, H, W, dtype=torch.float64, device=dev, requires_grad=True)
            runs = [torch.autograd.grad(sr_ops.gather_patches(img, coords.to(dev), order.to(dev), P), img,
                                        grad.to(dev))[0].cpu() for _ in range(2)]
    finally:
        torch.use_deterministic_algorithms(was)
    assert torch.equal(runs[0], runs[1])
    torch.testing.assert_close(runs[0], reference.gather_patches_backward(grad, coords, order, (B, C, H, W)),
                               rtol=1e-12, atol=1e-9)
    if backend in ("cuda", "triton"):
        assert torch.equal(runs[0], ascending_paste(grad, coords, order, B, H, W))
