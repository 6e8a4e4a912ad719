"""vertex_map on every backend against the reference and the contract."""
import pytest
import torch

import sr_ops
from sr_ops import reference

from _helpers import device_for

# (idx shape, key_hw, scale, patch_size, stride)
CASES = [
    ((2, 35, 5), (16, 16), 2, 3, 2),  # IGNN-like (B, m, k)
    ((1, 7, 1), (9, 13), 3, 3, 2),  # k = 1, non-square key map, scale 3
    ((3, 4, 2, 6), (11, 8), 4, 2, 3),  # leading dims, stride > patch
    ((17,), (5, 5), 1, 5, 1),  # a single key patch: every value 0
    ((), (12, 10), 2, 3, 1),  # a 0-d idx
    ((2, 0, 5), (8, 8), 2, 3, 2),  # empty
    ((4, 513), (64, 64), 2, 3, 2),  # above the CPU kernel's threading threshold in total
]


def grid(n, p, t):
    return (n - p) // t + 1


def random_idx(shape, key_hw, p, t, device, dtype=torch.int64):
    n = grid(key_hw[0], p, t) * grid(key_hw[1], p, t)
    return torch.randint(0, n, shape, dtype=dtype, device=device)


@pytest.mark.parametrize("case", CASES)
def test_matches_reference_and_contract(backend, case, seed):
    shape, key_hw, s, p, t = case
    idx = random_idx(shape, key_hw, p, t, device_for(backend))
    rows, cols = sr_ops.vertex_map(idx, key_hw, s, p, t)
    assert rows.dtype == cols.dtype == torch.int64
    assert rows.shape == cols.shape == idx.shape and rows.device == idx.device
    rr, rc = reference.vertex_map(idx.cpu(), key_hw, s, p, t)
    assert torch.equal(rows.cpu(), rr) and torch.equal(cols.cpu(), rc)
    n2 = grid(key_hw[1], p, t)
    a, b = idx.cpu() // n2, idx.cpu() % n2
    assert torch.equal(rows.cpu(), s * t * a) and torch.equal(cols.cpu(), s * t * b)


def test_every_key_patch_in_order(backend):
    """All n1*n2 numbers: the corners walk the scaled-up key grid row by row."""
    key_hw, s, p, t = (13, 10), 2, 3, 2
    n1, n2 = grid(13, p, t), grid(10, p, t)
    rows, cols = sr_ops.vertex_map(torch.arange(n1 * n2, device=device_for(backend)), key_hw, s, p, t)
    a, b = torch.meshgrid(torch.arange(n1), torch.arange(n2), indexing="ij")
    assert torch.equal(rows.cpu(), (s * t * a).flatten()) and torch.equal(cols.cpu(), (s * t * b).flatten())
    # Each region of size s*p fits in the scaled-up key map.
    assert int(rows.max()) + s * p <= s * 13 and int(cols.max()) + s * p <= s * 10


def test_other_integer_dtypes_and_non_contiguous(backend, seed):
    dev = device_for(backend)
    key_hw, s, p, t = (20, 17), 2, 3, 2
    base = random_idx((5, 6, 4), key_hw, p, t, dev)
    idx = base.transpose(0, 2)[1:, ::2]
    assert not idx.is_contiguous()
    for x in (idx, idx.int(), idx.short()):
        rows, cols = sr_ops.vertex_map(x, key_hw, s, p, t)
        rr, rc = reference.vertex_map(idx.cpu().contiguous(), key_hw, s, p, t)
        assert rows.dtype == torch.int64
        assert torch.equal(rows.cpu(), rr) and torch.equal(cols.cpu(), rc)


def test_opcheck(backend, seed):
    dev = device_for(backend)
    for shape, key_hw, s, p, t in [((2, 9, 3), (11, 9), 2, 3, 2), ((7,), (6, 6), 3, 2, 1)]:
        idx = random_idx(shape, key_hw, p, t, dev)
        torch.library.opcheck(torch.ops.sr_ops.vertex_map.default, (idx, list(key_hw), s, p, t))


def test_compiles_without_graph_breaks(seed):
    idx = random_idx((1, 16, 5), (9, 9), 3, 2, "cpu")
    fn = torch.compile(lambda x: sr_ops.vertex_map(x, (9, 9), 2, 3, 2), backend="aot_eager", fullgraph=True)
    rows, cols = fn(idx)
    rr, rc = reference.vertex_map(idx, (9, 9), 2, 3, 2)
    assert torch.equal(rows, rr) and torch.equal(cols, rc)


IDX = torch.tensor([[0, 3], [15, 8]])  # a 4x4 key grid for (9, 9), p=3, t=2


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((IDX.float(), (9, 9), 2), TypeError, "idx must be an integer tensor"),
        ((IDX.bool(), (9, 9), 2), TypeError, "idx must be an integer tensor"),
        (([0, 1], (9, 9), 2), TypeError, "idx must be a torch.Tensor"),
        ((IDX + 1, (9, 9), 2), ValueError, r"idx values must lie in \[0, 16\)"),
        ((IDX - 1, (9, 9), 2), ValueError, r"idx values must lie in \[0, 16\)"),
        ((IDX, 9, 2), TypeError, "key_hw must be a pair"),
        ((IDX, (9, 9, 1), 2), ValueError, "key_hw must be a pair"),
        ((IDX, (0, 9), 2), ValueError, "key_hw must be positive"),
        ((IDX, (9, 9), 0), ValueError, "scale must be positive"),
        ((IDX, (9, 9), 2.0), TypeError, "scale must be an int"),
        ((IDX, (9, 9), 2, 10), ValueError, "patch_size must be at most key_hw's"),
        ((IDX, (9, 9), 2, 3, 0), ValueError, "stride must be positive"),
        # Python ints are exact, int64 is not: these once overflowed silently (INT64_MIN) or
        # reported a negative bound.
        ((torch.tensor([3]), (8, 8), 2**62), ValueError, "overflows int64 coordinates"),
        ((torch.tensor([3]), (2**40, 2**40), 2), ValueError, "more patches than int64 can number"),
    ],
)
def test_bad_inputs(backend, args, exc, match):
    args = tuple(a.to(device_for(backend)) if isinstance(a, torch.Tensor) else a for a in args)
    with pytest.raises(exc, match=match):
        sr_ops.vertex_map(*args)


def test_cpp_kernel_rejects_bad_inputs_without_crashing():
    if "cpu" not in sr_ops.available_backends():
        pytest.skip("extension not built")
    with pytest.raises(ValueError, match=r"idx values must lie in \[0, 16\) \(the key patches\), got \[-1, 16\]"):
        torch.ops.sr_ops._vertex_map_fwd(torch.tensor([0, -1, 16, 3]), 9, 9, 2, 3, 2)
    with pytest.raises(TypeError, match="idx must be an int64 tensor, got torch.int32"):
        torch.ops.sr_ops._vertex_map_fwd(IDX.int(), 9, 9, 2, 3, 2)
    with pytest.raises(ValueError, match="must be at most key_hw's height and width"):
        torch.ops.sr_ops._vertex_map_fwd(IDX, 2, 9, 2, 3, 2)
