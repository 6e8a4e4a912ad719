"""class_dispatch on every backend: argmax, stable grouping by class, counts, errors."""
import pytest
import torch

import sr_ops
from sr_ops import reference

from _helpers import device_for


def loop_dispatch(ids, K):
    order = [i for k in range(K) for i, v in enumerate(ids.tolist()) if v == k]
    counts = [ids.tolist().count(k) for k in range(K)]
    return torch.tensor(order, dtype=torch.int64), torch.tensor(counts, dtype=torch.int64)


@pytest.mark.parametrize("N, K", [(1, 3), (37, 3), (150, 5), (200, 1), (70, 9)])
def test_ids_match_loop_and_reference(backend, N, K, seed):
    ids = torch.randint(0, K, (N,))
    ids[ids == K // 2] = 0  # leave a class empty whenever K > 1
    order, counts = sr_ops.class_dispatch(ids.to(device_for(backend)), K)
    want_o, want_c = loop_dispatch(ids, K)
    assert order.dtype == torch.int64 and counts.dtype == torch.int64
    assert torch.equal(order.cpu(), want_o) and torch.equal(counts.cpu(), want_c)
    ref_o, ref_c = reference.class_dispatch(ids, K)
    assert torch.equal(order.cpu(), ref_o) and torch.equal(counts.cpu(), ref_c)


def test_a_2k_images_patches_across_many_blocks(backend, seed):
    """ClassSR's 2774 patches of a 2040 x 1080 image: the GPU kernels split them over
    hundreds of blocks whose per-class counts are prefix-summed; long single-class runs cross
    block borders. The same stable order and counts every run."""
    ids = torch.randint(0, 3, (2774,))
    ids[100:900] = 1
    ids[2000:] = 2
    want = reference.class_dispatch(ids, 3)
    logits = torch.nn.functional.one_hot(ids, 3).double() + 0.25 * torch.rand(2774, 3)
    for x in (ids, logits):
        runs = [sr_ops.class_dispatch(x.to(device_for(backend)), 3) for _ in range(2)]
        for order, counts in runs:
            assert torch.equal(order.cpu(), want[0]) and torch.equal(counts.cpu(), want[1])


def test_stable_hand_made_example(backend):
    ids = torch.tensor([2, 0, 2, 1, 0, 2, 0], device=device_for(backend))
    order, counts = sr_ops.class_dispatch(ids, 4)
    assert order.cpu().tolist() == [1, 4, 6, 3, 0, 2, 5]
    assert counts.cpu().tolist() == [3, 1, 3, 0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_logits_with_ties_take_the_first_maximum(backend, dtype, seed):
    N, K = 64, 4
    logits = torch.randint(0, 3, (N, K)).to(dtype)  # many exact ties
    order, counts = sr_ops.class_dispatch(logits.to(device_for(backend)), K)
    ids = torch.tensor([row.index(max(row)) for row in logits.tolist()])
    want_o, want_c = loop_dispatch(ids, K)
    assert torch.equal(order.cpu(), want_o) and torch.equal(counts.cpu(), want_c)


def test_random_logits_and_int32_ids(backend, seed):
    logits = torch.randn(91, 3, device=device_for(backend))
    order, counts = sr_ops.class_dispatch(logits, 3)
    ref = reference.class_dispatch(logits.cpu(), 3)
    assert torch.equal(order.cpu(), ref[0]) and torch.equal(counts.cpu(), ref[1])
    ids = logits.argmax(1).int()
    order2, counts2 = sr_ops.class_dispatch(ids, 3)
    assert torch.equal(order2, order) and torch.equal(counts2, counts)


def test_opcheck(backend, seed):
    dev = device_for(backend)
    torch.library.opcheck(torch.ops.sr_ops.class_dispatch.default, (torch.randint(0, 3, (23,), device=dev), 3))
    torch.library.opcheck(torch.ops.sr_ops.class_dispatch.default, (torch.randn(23, 3, device=dev), 3))


def test_compiles_without_graph_breaks(seed):
    logits = torch.randn(30, 3)
    fn = torch.compile(lambda x: sr_ops.class_dispatch(x, 3), backend="aot_eager", fullgraph=True)
    order, counts = fn(logits)
    ref = reference.class_dispatch(logits, 3)
    assert torch.equal(order, ref[0]) and torch.equal(counts, ref[1])


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((torch.tensor([0, 1, 3]), 3), ValueError, r"ids values must lie in \[0, 3\) \(num_classes\)"),
        ((torch.tensor([0, -1, 2]), 3), ValueError, r"ids values must lie in \[0, 3\) \(num_classes\)"),
        ((torch.randn(5, 4), 3), ValueError, "logits must be"),
        ((torch.randn(5), 3), ValueError, "logits must be"),
        ((torch.zeros(5, 1, dtype=torch.int64), 3), ValueError, "ids must be"),
        ((torch.zeros(5, dtype=torch.bool), 3), TypeError, "integer ids or float logits"),
        ((torch.zeros(5, dtype=torch.int64), 0), ValueError, "num_classes must be positive"),
        (([0, 1], 3), TypeError, "ids_or_logits must be a torch.Tensor"),
    ],
)
def test_bad_inputs(args, exc, match):
    with pytest.raises(exc, match=match):
        sr_ops.class_dispatch(*args)
