"""merge_patches on every backend: averaging paste, identity with gather, gradient, errors."""
import warnings

import pytest
import torch

import sr_ops
from sr_ops import reference

from _helpers import device_for
from _paste_oracle import ascending_paste, dense_windows

# (B, C, H, W, P, T, scale): odd sizes, B > 1, C = 1 and 3, one patch, gaps (T > P).
CASES = [
    (1, 3, 13, 17, 4, 3, 2),
    (2, 1, 9, 11, 3, 2, 1),
    (3, 3, 6, 6, 6, 2, 3),
    (2, 2, 11, 14, 3, 5, 2),
    (1, 3, 10, 9, 5, 2, 4),
]


def setup(case, device, dtype=torch.float32):
    B, C, H, W, P, T, s = case
    _, coords = reference.extract_patches(torch.zeros(B, 1, H, W), P, T)
    coords = coords.to(device)
    order = torch.randperm(coords.shape[0], device=device)
    outputs = torch.randn(coords.shape[0], C, s * P, s * P, device=device, dtype=dtype)
    return outputs, coords, order


def loop_merge(outputs, coords, order, B, H, W, s):
    C, Q = outputs.shape[1], outputs.shape[-1]
    total = torch.zeros(B, C, s * H, s * W, dtype=torch.float64)
    count = torch.zeros(B, 1, s * H, s * W, dtype=torch.float64)
    for i, q in enumerate(order.tolist()):
        b, r, c = coords[q].tolist()
        total[b, :, s * r:s * r + Q, s * c:s * c + Q] += outputs[i].double()
        count[b, :, s * r:s * r + Q, s * c:s * c + Q] += 1
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros(()))


@pytest.mark.parametrize("case", CASES)
def test_reference_matches_loop(case, seed):
    B, C, H, W, P, T, s = case
    outputs, coords, order = setup(case, "cpu", torch.float64)
    torch.testing.assert_close(reference.merge_patches(outputs, coords, order, (B, H, W), s),
                               loop_merge(outputs, coords, order, B, H, W, s))


@pytest.mark.parametrize("case", CASES)
def test_forward_backward_match_reference(backend, case, seed):
    B, C, H, W, P, T, s = case
    outputs, coords, order = setup(case, device_for(backend))
    outputs.requires_grad_()
    out = sr_ops.merge_patches(outputs, coords, order, (B, H, W), s)
    g = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, outputs, g)
    args = (coords.cpu(), order.cpu())
    ref = reference.merge_patches(outputs.detach().cpu(), *args, (B, H, W), s)
    torch.testing.assert_close(out.detach().cpu(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad.cpu(), reference.merge_patches_backward(g.cpu(), *args, P, s), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("B, C, H, W, P, T", [(1, 3, 24, 24, 8, 4), (2, 1, 23, 19, 6, 4), (3, 3, 10, 13, 4, 3),
                                              (1, 3, 32, 47, 8, 7), (2, 2, 9, 9, 9, 3)])
def test_merge_of_gather_is_the_image_exactly(backend, B, C, H, W, P, T, seed):
    # Pastes accumulate float32 in float64, so the mean of k equal values is exact for any k.
    dev = device_for(backend)
    img = torch.randn(B, C, H, W, device=dev)
    _, coords = sr_ops.extract_patches(img, P, T)
    for order in (torch.randperm(coords.shape[0], device=dev), torch.arange(coords.shape[0], device=dev)):
        back = sr_ops.merge_patches(sr_ops.gather_patches(img, coords, order, P), coords, order, (B, H, W), 1)
        assert torch.equal(back, img)


def test_merge_of_gather_dense_overlap_is_exact(backend, seed):
    dev = device_for(backend)
    img = torch.randn(2, 3, 11, 12, device=dev)
    _, coords = sr_ops.extract_patches(img, 5, 1)  # up to 25 windows per pixel
    order = torch.randperm(coords.shape[0], device=dev)
    back = sr_ops.merge_patches(sr_ops.gather_patches(img, coords, order, 5), coords, order, (2, 11, 12), 1)
    assert torch.equal(back, img)


def test_uncovered_pixels_are_zero(backend, seed):
    dev = device_for(backend)
    outputs = torch.randn(2, 1, 4, 4, device=dev) + 5
    coords = torch.tensor([[0, 0, 0], [0, 3, 4]], device=dev)
    out = sr_ops.merge_patches(outputs, coords, torch.tensor([1, 0], device=dev), (1, 6, 7), 2)
    covered = torch.zeros(1, 1, 12, 14, dtype=torch.bool)
    covered[..., 0:4, 0:4] = True
    covered[..., 6:10, 8:12] = True
    assert (out.cpu()[~covered.expand_as(out)] == 0).all() and (out.cpu()[covered.expand_as(out)] != 0).all()


def test_hw_out_size_infers_batch(backend, seed):
    B, C, H, W, P, T, s = 3, 2, 9, 8, 3, 2, 2
    outputs, coords, order = setup((B, C, H, W, P, T, s), device_for(backend))
    a = sr_ops.merge_patches(outputs, coords, order, (H, W), s)
    assert a.shape == (B, C, s * H, s * W)
    assert torch.equal(a, sr_ops.merge_patches(outputs, coords, order, (B, H, W), s))


def test_non_contiguous_outputs(backend, seed):
    B, C, H, W, P, T, s = 2, 3, 9, 10, 3, 2, 2
    base, coords, order = setup((B, C, H, W, P, T, s), device_for(backend))
    outputs = base.permute(0, 1, 3, 2)
    assert not outputs.is_contiguous()
    out = sr_ops.merge_patches(outputs, coords, order, (B, H, W), s)
    ref = reference.merge_patches(outputs.cpu().contiguous(), coords.cpu(), order.cpu(), (B, H, W), s)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-5, atol=1e-6)


def test_gradcheck_float64(backend, seed):
    for case in [(2, 2, 7, 6, 3, 2, 2), (1, 1, 6, 9, 2, 3, 1)]:
        B, C, H, W, P, T, s = case
        outputs, coords, order = setup(case, device_for(backend), torch.float64)
        outputs.requires_grad_()
        fn = lambda x: sr_ops.merge_patches(x, coords, order, (B, H, W), s)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (outputs,), fast_mode=True)
        assert torch.autograd.gradgradcheck(fn, (outputs,), fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_accumulates_in_float(backend, dtype, seed):
    B, C, H, W, P, T, s = 1, 3, 10, 9, 4, 2, 2
    outputs, coords, order = setup((B, C, H, W, P, T, s), device_for(backend), dtype)
    out = sr_ops.merge_patches(outputs, coords, order, (B, H, W), s)
    assert out.dtype == dtype
    ref = reference.merge_patches(outputs.float().cpu(), coords.cpu(), order.cpu(), (B, H, W), s)
    torch.testing.assert_close(out.float().cpu(), ref, rtol=1e-2, atol=1e-2)


def test_opcheck(backend, seed):
    B, C, H, W, P, T, s = 2, 3, 9, 7, 3, 2, 2
    outputs, coords, order = setup((B, C, H, W, P, T, s), device_for(backend))
    outputs.requires_grad_()
    torch.library.opcheck(torch.ops.sr_ops.merge_patches.default, (outputs, coords, order, [B, H, W], s))
    torch.library.opcheck(torch.ops.sr_ops.merge_patches.default, (outputs, coords, order, [H, W], s))
    g = torch.randn(B, C, s * H, s * W, device=outputs.device, requires_grad=True)
    torch.library.opcheck(torch.ops.sr_ops.merge_patches_backward.default, (g, coords, order, P, s))


def test_compiles_without_graph_breaks(seed):
    B, C, H, W, P, T, s = 1, 2, 9, 9, 3, 2, 2
    outputs, coords, order = setup((B, C, H, W, P, T, s), "cpu")
    outputs.requires_grad_()
    fn = torch.compile(lambda x: sr_ops.merge_patches(x, coords, order, (B, H, W), s) * 2, backend="aot_eager",
                       fullgraph=True)
    out = fn(outputs)
    out.sum().backward()
    torch.testing.assert_close(out, 2 * reference.merge_patches(outputs.detach(), coords, order, (B, H, W), s))
    want = reference.merge_patches_backward(torch.full_like(out, 2.0), coords, order, P, s)
    torch.testing.assert_close(outputs.grad, want)


def _bad(**changes):
    args = dict(outputs=torch.randn(3, 3, 6, 6), coords=torch.tensor([[0, 0, 0], [1, 6, 6], [0, 3, 2]]),
                order=torch.tensor([2, 0, 1]), out_size=(2, 9, 9), scale=2)
    args.update(changes)
    return args


@pytest.mark.parametrize(
    "args, exc, match",
    [
        (_bad(outputs=torch.randn(3, 3, 6, 5)), ValueError, r"outputs must be \(N, C, s\*P, s\*P\)"),
        (_bad(outputs=torch.randn(3, 3, 7, 7)), ValueError, r"outputs must be \(N, C, s\*P, s\*P\)"),
        (_bad(outputs=torch.randn(4, 3, 6, 6)), ValueError, "outputs must have the N=3 patches of coords and order"),
        (_bad(order=torch.tensor([0, 1])), ValueError, "order must have coords' N=3 entries"),
        (_bad(out_size=(2, 8, 9)), ValueError, r"coords row values must lie in \[0, 6\)"),
        (_bad(out_size=(1, 9, 9)), ValueError, r"coords batch values must lie in \[0, 1\)"),
        (_bad(order=torch.tensor([2, 0, -1])), ValueError, "order values must lie in"),
        (_bad(coords=torch.tensor([[0, 0, 0], [1, 6, 6], [-1, 3, 2]]), out_size=(9, 9)), ValueError, "coords batch"),
        (_bad(out_size=(2, 2, 9)), ValueError, "must be at most out_size's height and width"),
        (_bad(out_size=(9,)), ValueError, r"out_size must be \(B, H, W\) or \(H, W\)"),
        (_bad(out_size=(2, 0, 9)), ValueError, "out_size must be positive"),
        (_bad(scale=0), ValueError, "scale must be positive"),
        (_bad(outputs=torch.randint(0, 2, (3, 3, 6, 6))), TypeError, "outputs must be a floating"),
        (_bad(coords=torch.zeros(3, 3)), TypeError, "coords must be an integer tensor"),
    ],
)
def test_bad_inputs(args, exc, match):
    with pytest.raises(exc, match=match):
        sr_ops.merge_patches(**args)


@pytest.mark.parametrize("scale, P, step", [(1, 4, 1), (4, 2, 1), (2, 3, 2)])
def test_dense_overlap_is_the_same_every_run(backend, scale, P, step, seed):
    """Pixels under up to 32 windows (each twice), pasted in a random order, in
    deterministic mode: the same bits on every run, the reference to float64 rounding, and on
    the GPU backends exactly the ascending-order sum (python_tests/_paste_oracle.py)."""
    dev = device_for(backend)
    B, H, W = 2, 7, 13
    coords, order = dense_windows(B, H, W, P, step, repeat=2)
    Q = scale * P
    outputs = torch.randn(order.shape[0], 2, Q, Q, dtype=torch.float64) * 100
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback to the reference
            runs = [sr_ops.merge_patches(outputs.to(dev), coords.to(dev), order.to(dev), (B, H, W), scale).cpu()
                    for _ in range(2)]
    finally:
        torch.use_deterministic_algorithms(was)
    assert torch.equal(runs[0], runs[1])
    torch.testing.assert_close(runs[0], reference.merge_patches(outputs, coords, order, (B, H, W), scale),
                               rtol=1e-12, atol=1e-12)
    if backend in ("cuda", "triton"):
        assert torch.equal(runs[0], ascending_paste(outputs, coords, order, B, scale * H, scale * W, scale, True))
