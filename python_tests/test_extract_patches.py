"""extract_patches on every backend: the covering grid, its order, crops and gradient."""
import pytest
import torch

import sr_ops
from sr_ops import reference

from _helpers import device_for

# (B, C, H, W, P, T): sizes that are and are not multiples of the stride, stride > patch
# (gaps), stride 1, one patch (P = H = W), B > 1, C = 1 and 3, non-square images.
CASES = [
    (1, 3, 13, 17, 4, 3),
    (2, 1, 9, 9, 9, 2),
    (3, 3, 12, 10, 4, 4),
    (1, 2, 11, 19, 3, 5),
    (2, 3, 7, 16, 5, 1),
]


def loop_positions(n, P, T):
    """Corners along one axis, written out step by step."""
    pos, p = [], 0
    while p + P <= n:
        pos.append(p)
        p += T
    if pos[-1] + P < n:
        pos.append(n - P)
    return pos


def loop_extract(img, P, T):
    B, _, H, W = img.shape
    patches, coords = [], []
    for b in range(B):
        for r in loop_positions(H, P, T):
            for c in loop_positions(W, P, T):
                patches.append(img[b, :, r:r + P, c:c + P])
                coords.append([b, r, c])
    return torch.stack(patches), torch.tensor(coords, dtype=torch.int64)


@pytest.mark.parametrize("case", CASES)
def test_reference_matches_loop(case, seed):
    B, C, H, W, P, T = case
    img = torch.randn(B, C, H, W, dtype=torch.float64)
    patches, coords = reference.extract_patches(img, P, T)
    want_p, want_c = loop_extract(img, P, T)
    assert torch.equal(coords, want_c)
    assert torch.equal(patches, want_p)


@pytest.mark.parametrize("H, P, T", [(13, 4, 3), (12, 4, 4), (30, 8, 7), (9, 9, 2), (10, 3, 20)])
def test_grid_covers_image_and_ends_at_border(H, P, T):
    img = torch.randn(1, 1, H, H)
    _, coords = sr_ops.extract_patches(img, P, T)
    rows = sorted(set(coords[:, 1].tolist()))
    assert rows[0] == 0 and rows[-1] == H - P
    assert len(rows) == len(set(rows))
    if T <= P:  # every pixel covered
        covered = torch.zeros(H, dtype=torch.bool)
        for r in rows:
            covered[r:r + P] = True
        assert covered.all()


@pytest.mark.parametrize("case", CASES)
def test_forward_backward_match_reference(backend, case, seed):
    B, C, H, W, P, T = case
    img = torch.randn(B, C, H, W, device=device_for(backend)).requires_grad_()
    patches, coords = sr_ops.extract_patches(img, P, T)
    g = torch.randn_like(patches)
    (grad,) = torch.autograd.grad(patches, img, g)
    ref_p, ref_c = reference.extract_patches(img.detach().cpu(), P, T)
    assert coords.dtype == torch.int64 and torch.equal(coords.cpu(), ref_c)
    assert torch.equal(patches.detach().cpu(), ref_p)
    ref_g = reference.extract_patches_backward(g.cpu(), ref_c, (B, C, H, W))
    torch.testing.assert_close(grad.cpu(), ref_g, rtol=1e-5, atol=1e-6)


def test_non_contiguous_input(backend, seed):
    base = torch.randn(2, 11, 13, 3, device=device_for(backend))
    img = base.permute(0, 3, 1, 2)  # channels-last view
    assert not img.is_contiguous()
    patches, _ = sr_ops.extract_patches(img, 4, 3)
    torch.testing.assert_close(patches.cpu(), reference.extract_patches(img.cpu().contiguous(), 4, 3)[0])


def test_gradcheck_float64(backend, seed):
    img = torch.randn(2, 2, 7, 8, device=device_for(backend), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: sr_ops.extract_patches(x, 3, 2)[0], (img,), fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(backend, dtype, seed):
    img = torch.randn(1, 3, 10, 9, device=device_for(backend), dtype=dtype)
    patches, _ = sr_ops.extract_patches(img, 4, 3)
    assert patches.dtype == dtype
    assert torch.equal(patches.cpu(), reference.extract_patches(img.cpu(), 4, 3)[0])


def test_opcheck(backend, seed):
    img = torch.randn(2, 3, 9, 8, device=device_for(backend), requires_grad=True)
    torch.library.opcheck(torch.ops.sr_ops.extract_patches.default, (img, 3, 2))


def test_empty_batch(backend):
    """B = 0: no patches and an empty gradient on every backend (the CPU backward rejected
    B = 0)."""
    img = torch.randn(0, 3, 7, 6, device=device_for(backend), requires_grad=True)
    patches, coords = sr_ops.extract_patches(img, 3, 2)
    assert patches.shape == (0, 3, 3, 3) and coords.shape == (0, 3)
    (grad,) = torch.autograd.grad(patches, img, torch.randn_like(patches))
    assert grad.shape == img.shape


def test_compiles_without_graph_breaks(seed):
    img = torch.randn(1, 2, 9, 10, requires_grad=True)
    fn = torch.compile(lambda x: sr_ops.extract_patches(x, 4, 3)[0] * 2, backend="aot_eager", fullgraph=True)
    out = fn(img)
    out.sum().backward()
    torch.testing.assert_close(out, 2 * reference.extract_patches(img.detach(), 4, 3)[0])
    _, coords = reference.extract_patches(img.detach(), 4, 3)
    torch.testing.assert_close(img.grad, reference.extract_patches_backward(torch.full_like(out, 2.0), coords,
                                                                             img.shape))


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((torch.randn(1, 3, 5, 9), 6, 2), ValueError, "patch_size must be at most img's height and width"),
        ((torch.randn(1, 3, 9, 9), 3, 0), ValueError, "stride must be positive"),
        ((torch.randn(1, 3, 9, 9), 3, -2), ValueError, "stride must be positive"),
        ((torch.randn(1, 3, 9, 9), 0, 2), ValueError, "patch_size must be positive"),
        ((torch.randn(3, 9, 9), 3, 2), ValueError, "img must have 4 dims"),
        ((torch.randint(0, 5, (1, 3, 9, 9)), 3, 2), TypeError, "img must be a floating"),
        ((torch.randn(1, 3, 9, 9), 3.0, 2), TypeError, "patch_size must be an int"),
        (([[1.0]], 3, 2), TypeError, "img must be a torch.Tensor"),
    ],
)
def test_bad_inputs(args, exc, match):
    with pytest.raises(exc, match=match):
        sr_ops.extract_patches(*args)
