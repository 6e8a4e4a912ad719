"""The streaming Triton kernels' layouts (adapn, patch2img, vertex_map, extract_patches):
the tails their vectorised tiles leave, and the wrappers' choice of int64 index math.

The kernels compute in int32 and read whole groups of 2-4 values a thread; these tests put
sizes at the edges of those groups (rows that are not a multiple of the group, programs
with spare lanes) on every backend, and check with meta tensors (no memory) that the
wrappers switch to the INDEX64 variant exactly when a tensor reaches 2**31 elements."""
import importlib

import pytest
import torch

import sr_ops
from sr_ops import reference

from _helpers import device_for

BIG = 2**31  # elements: int32 offsets no longer reach


def grid(n, p, t):
    return (n - p) // t + 1


# (B, C, H, W, P, T), each chosen for a tile edge of the Triton kernels:
PATCH2IMG = [
    (1, 2, 28, 29, 12, 8),  # forward groups of 4 (P, T multiples of 4), W = 29: a 1-pixel group ends each row
    (2, 3, 16, 30, 8, 4),  # groups of 4, W = 30: a half group; backward rows of 8 = two 16-byte chunks
    (1, 2, 22, 24, 6, 4),  # IGNN's 6x6 / stride 4, W multiple of 4: backward chunks of 4 + 2, forward pairs
    (1, 3, 19, 27, 7, 4),  # P = 7: backward chunks 4 + 2 + 1, forward single values
    (1, 2, 13, 18, 6, 2),  # stride 2: pairs, chunk starts only 8-byte aligned
    (3, 1, 10, 13, 10, 10),  # a single patch per image, 3 columns uncovered (0)
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
@pytest.mark.parametrize("case", PATCH2IMG)
def test_patch2img_tiles(backend, case, dtype, seed):
    B, C, H, W, P, T = case
    dev = device_for(backend)
    p = torch.randn(B, grid(H, P, T) * grid(W, P, T), C, P, P, dtype=dtype).to(dev).requires_grad_()
    out = sr_ops.patch2img(p, (H, W), P, T)
    g = torch.randn(out.shape, dtype=dtype).to(dev)
    (grad,) = torch.autograd.grad(out, p, g)
    # Against float64: the kernels compute in float32 (float64) and round once.
    ref = reference.patch2img(p.detach().cpu().double(), (H, W), P, T)
    rgrad = reference.patch2img_backward(g.cpu().double(), P, T)
    tol = dict(rtol=2e-3, atol=2e-3) if dtype == torch.float16 else dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.cpu().double(), ref, **tol)
    torch.testing.assert_close(grad.cpu().double(), rgrad, **tol)


# (neighbors shape, query shape): patch sizes whose rows do / do not fill groups of 4,
# group counts that leave the last program part empty.
ADAPN = [
    ((7, 5, 10, 6, 6), (7, 10, 3, 3)),  # IGNN's 36 = 9 groups of 4; 70 (n, c) groups: 3 programs, the last part empty
    ((3, 2, 25, 4, 4), (3, 25, 2, 2)),  # 16 values, a full power-of-two tile
    ((2, 3, 9, 3, 4), (2, 9, 3, 4)),  # 12 values in a 16-wide tile
    ((5, 2, 13, 5, 5), (5, 13, 3, 3)),  # 25 values: no group of 4 aligned
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("case", ADAPN)
def test_adapn_tiles(backend, case, dtype, seed):
    nshape, qshape = case
    dev = device_for(backend)
    z = (torch.randn(nshape) * (1 + 3 * torch.rand(nshape[:-2] + (1, 1))) + 2).to(dtype)
    q = (torch.randn(qshape) * 0.5 - 1).to(dtype)
    zd, qd = z.to(dev).requires_grad_(), q.to(dev).requires_grad_()
    out = sr_ops.adapn(zd, qd)
    g = torch.randn(out.shape).to(dtype)
    gz, gq = torch.autograd.grad(out, (zd, qd), g.to(dev))
    z64, q64 = z.double().requires_grad_(), q.double().requires_grad_()
    ref = reference.adapn(z64, q64)
    rz, rq = torch.autograd.grad(ref, (z64, q64), g.double())
    tol = dict(rtol=5e-3, atol=5e-3) if dtype == torch.float16 else dict(rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.cpu().double(), ref.detach(), **tol)
    torch.testing.assert_close(gz.cpu().double(), rz, **tol)
    torch.testing.assert_close(gq.cpu().double(), rq, **tol)


class _Launches:
    """Stands in for a @triton.jit kernel: records each launch's keyword arguments."""

    def __init__(self):
        self.kwargs = []

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.kwargs.append(kwargs)


def _stub(monkeypatch, module, *names):
    mod = importlib.import_module(f"sr_ops.triton.{module}")
    launches = _Launches()
    for name in names:
        monkeypatch.setattr(mod, name, launches)
    return mod, launches


def _meta(*shape, dtype=torch.float32):
    return torch.empty(*shape, dtype=dtype, device="meta")


@pytest.mark.parametrize("n, n2, wide", [(10, 11, False), (BIG - 4096, 11, False), (BIG, 11, True),
                                        (10, BIG, True)])
def test_vertex_map_index64_choice(monkeypatch, n, n2, wide):
    mod, launches = _stub(monkeypatch, "vertex_map", "_map_kernel")
    mod.vertex_map_fwd(_meta(n, dtype=torch.int64), (3, n2 + 2), 1, 3, 1)  # key grid 1 x n2
    assert [k["INDEX64"] for k in launches.kwargs] == [wide]


@pytest.mark.parametrize("hw, wide", [((64, 64), False), ((2**15, 2**15), True)])
def test_extract_patches_index64_choice(monkeypatch, hw, wide):
    # 1x1 patches at stride 1: a corner per pixel, 3 int64 each: 2**30 corners pass 2**31 offsets.
    mod, launches = _stub(monkeypatch, "extract_patches", "_corner_kernel")
    monkeypatch.setattr(mod, "crop", lambda *args: None)
    mod.extract_patches_fwd(_meta(1, 1, *hw), 1, 1)
    assert [k["INDEX64"] for k in launches.kwargs] == [wide]


@pytest.mark.parametrize("n, wide", [(2, False), (BIG // (5 * 36), True)])
def test_adapn_index64_choice(monkeypatch, n, wide):
    mod, launches = _stub(monkeypatch, "adapn", "_fwd_kernel", "_bwd_kernel")
    z, q = _meta(n, 5, 1, 6, 6), _meta(n, 1, 3, 3)
    mod.adapn_fwd(z, q, 1e-5)
    mod.adapn_bwd(z, z, q, 1e-5)
    assert [k["INDEX64"] for k in launches.kwargs] == [wide, wide]


@pytest.mark.parametrize("hw, wide", [((48, 48), False), ((2**16, 2**15), True)])
def test_patch2img_index64_choice(monkeypatch, hw, wide):
    # 6x6 patches at stride 4: the patches hold 2.25x the map's values; a 2**31-value map
    # (and its patches) needs int64, a 48x48 one does not.
    mod, launches = _stub(monkeypatch, "patch2img", "_fwd_kernel", "_bwd_kernel")
    L = grid(hw[0], 6, 4) * grid(hw[1], 6, 4)
    mod.patch2img_fwd(_meta(1, L, 1, 6, 6), hw, 6, 4)
    mod.patch2img_bwd(_meta(1, 1, *hw), 6, 4)
    assert [k["INDEX64"] for k in launches.kwargs] == [wide, wide]


def test_patch2img_index64_counts_the_patches(monkeypatch):
    """The patches can pass 2**31 values while the map does not (6x6 at stride 4: 2.25x)."""
    mod, launches = _stub(monkeypatch, "patch2img", "_fwd_kernel", "_bwd_kernel")
    hw = (2**15, 2**15)  # 2**30 pixels, about 2.4e9 patch values
    L = grid(hw[0], 6, 4) * grid(hw[1], 6, 4)
    assert L * 36 >= BIG > hw[0] * hw[1]
    mod.patch2img_fwd(_meta(1, L, 1, 6, 6), hw, 6, 4)
    mod.patch2img_bwd(_meta(1, 1, *hw), 6, 4)
    assert [k["INDEX64"] for k in launches.kwargs] == [True, True]


@pytest.mark.parametrize("op", ["adapn", "patch2img", "vertex_map", "extract_patches"])
def test_index64_variant_matches_reference(monkeypatch, op, seed):
    """The int64 variants, forced on small inputs, compute what the int32 ones do."""
    if "triton" not in sr_ops.available_backends():
        pytest.skip("no triton backend")
    mod = importlib.import_module(f"sr_ops.triton.{op}")
    monkeypatch.setattr(mod, "index64", lambda *sizes: True)
    dev = device_for("triton")
    with sr_ops.use_backend("triton"):
        if op == "adapn":
            z, q = torch.randn(3, 5, 4, 6, 6) + 2, torch.randn(3, 4, 3, 3)
            zd, qd = z.to(dev).requires_grad_(), q.to(dev).requires_grad_()
            out = sr_ops.adapn(zd, qd)
            got = (out, *torch.autograd.grad(out, (zd, qd), torch.ones_like(out)))
            z, q = z.requires_grad_(), q.requires_grad_()
            ref = reference.adapn(z, q)
            want = (ref, *torch.autograd.grad(ref, (z, q), torch.ones_like(ref)))
        elif op == "patch2img":
            p = torch.randn(2, grid(22, 6, 4) * grid(25, 6, 4), 3, 6, 6)
            pd = p.to(dev).requires_grad_()
            out = sr_ops.patch2img(pd, (22, 25), 6, 4)
            g = torch.randn(out.shape)
            got = (out, *torch.autograd.grad(out, pd, g.to(dev)))
            want = (reference.patch2img(p, (22, 25), 6, 4), reference.patch2img_backward(g, 6, 4))
        elif op == "vertex_map":
            idx = torch.randint(0, grid(20, 3, 2) * grid(17, 3, 2), (4, 50))
            got, want = sr_ops.vertex_map(idx.to(dev), (20, 17), 2), reference.vertex_map(idx, (20, 17), 2)
        else:
            img = torch.randn(2, 3, 21, 26)
            got, want = sr_ops.extract_patches(img.to(dev), 8, 6), reference.extract_patches(img, 8, 6)
    for a, b in zip(got, want):
        torch.testing.assert_close(a.detach().cpu(), b.detach(), rtol=1e-5, atol=1e-5)
