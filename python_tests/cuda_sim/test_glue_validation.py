"""The CUDA entry points (glue + kernels, run by the simulator) reject what the CPU kernels
reject, with the same error (both call csrc/checks/) — above all index values that would
become out-of-bounds offsets in a kernel — and take non-contiguous inputs."""
from __future__ import annotations

import pytest
import torch

from _build import ops as sim_ops
from _cases import cpu_ops


@pytest.fixture(scope="module")
def sim():
    return sim_ops()


def _g():
    return torch.Generator().manual_seed(3)


def _knn_bwd(idx_value=None, idx_shape=None):
    g = _g()
    q, key = torch.randn(1, 2, 7, 7, generator=g), torch.randn(1, 2, 6, 6, generator=g)
    _, idx = cpu_ops._cross_scale_knn_fwd(q, key, 2, 3, 1, -1, 1)
    if idx_value is not None:
        idx = idx.clone()
        idx[0, 3, 1] = idx_value
    if idx_shape is not None:
        idx = idx[:, : idx_shape].contiguous()
    return "_cross_scale_knn_bwd", (torch.randn(idx.shape, generator=g), idx, q, key, 3, 1)


def _graph_agg_bad_idx():
    g = _g()
    feat = torch.randn(1, 2, 8, 8, generator=g)
    idx = torch.randint(0, 4, (1, 36, 2), generator=g)
    idx[0, 5, 0] = 4  # the key grid of (4, 4) with p=3, t=1 has 2 x 2 patches
    return "_graph_aggregate_fwd", (feat, idx, feat.clone(), None, 4, 4, 2, 3, 1, True, 1e-5)


def _graph_agg_region_outside():
    g = _g()
    feat = torch.randn(1, 2, 8, 8, generator=g)
    idx = torch.randint(0, 25, (1, 36, 2), generator=g)
    # key (7, 7), p=3, t=1: 5 x 5 patches; the last region row starts at 2 * 4 = 8, past feat's 8 rows
    return "_graph_aggregate_fwd", (feat, idx, feat.clone(), None, 7, 7, 2, 3, 1, True, 1e-5)


BAD = {
    "knn-bwd-idx-too-large": lambda: _knn_bwd(idx_value=16),
    "knn-bwd-idx-negative": lambda: _knn_bwd(idx_value=-1),
    "knn-bwd-idx-shape": lambda: _knn_bwd(idx_shape=5),
    "knn-fwd-batch-mismatch": lambda: ("_cross_scale_knn_fwd",
                                       (torch.randn(2, 2, 7, 7), torch.randn(1, 2, 6, 6), 2, 3, 1, -1, 1)),
    "vertex-map-idx-negative": lambda: ("_vertex_map_fwd", (torch.tensor([0, -1, 3]), 7, 7, 2, 3, 2)),
    "vertex-map-idx-too-large": lambda: ("_vertex_map_fwd", (torch.tensor([9]), 7, 7, 2, 3, 2)),
    "class-dispatch-id-too-large": lambda: ("_class_dispatch_fwd", (torch.tensor([0, 3, 1]), 3)),
    "graph-aggregate-idx-too-large": _graph_agg_bad_idx,
    "graph-aggregate-region-outside": _graph_agg_region_outside,
    "eca-even-kernel": lambda: ("_eca_fwd", (torch.randn(1, 4, 3, 3), torch.randn(2))),
    "layernorm2d-weight-shape": lambda: ("_layernorm2d_fwd", (torch.randn(1, 4, 3, 3), torch.randn(3),
                                                              torch.randn(4), 1e-6)),
    "dwconv-even-kernel": lambda: ("_dwconv_gate_ca_fwd", (torch.randn(1, 4, 5, 5), torch.randn(4, 1, 2, 2),
                                                           torch.randn(4), torch.randn(2, 2, 1, 1), torch.randn(2),
                                                           True)),
    "adapn-one-value-patches": lambda: ("_adapn_fwd", (torch.randn(1, 2, 3, 1, 1), torch.randn(1, 3, 2, 2), 1e-5)),
    "patch2img-patch-count": lambda: ("_patch2img_fwd", (torch.randn(1, 15, 2, 3, 3), 9, 9, 2)),
    "extract-patch-too-large": lambda: ("_extract_patches_fwd", (torch.randn(1, 2, 4, 6), 5, 1)),
    # Windows outside the image: the GPU kernels would read them, or paste into them with atomics.
    "gather-window-outside": lambda: ("_gather_patches_fwd", (torch.randn(1, 2, 6, 6), torch.tensor([[0, 4, 0]]),
                                                              torch.tensor([0]), 3)),
    "gather-bwd-order-too-large": lambda: ("_gather_patches_bwd", (torch.randn(1, 2, 3, 3), torch.tensor([[0, 0, 0]]),
                                                                   torch.tensor([1]), 1, 6, 6)),
    "gather-bwd-batch-too-large": lambda: ("_gather_patches_bwd", (torch.randn(1, 2, 3, 3), torch.tensor([[1, 0, 0]]),
                                                                   torch.tensor([0]), 1, 6, 6)),
    "merge-window-outside": lambda: ("_merge_patches_fwd", (torch.randn(1, 2, 6, 6), torch.tensor([[0, 0, 2]]),
                                                            torch.tensor([0]), 1, 4, 4, 2)),
    "merge-bwd-order-negative": lambda: ("_merge_patches_bwd", (torch.randn(1, 2, 8, 8), torch.tensor([[0, 0, 0]]),
                                                                torch.tensor([-1]), 3, 2)),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_rejected_like_the_cpu_kernel(sim, name):
    op, args = BAD[name]()
    with pytest.raises((TypeError, ValueError)) as cpu_error:
        getattr(cpu_ops, op)(*args)
    launches = sim._sim_launch_count()
    with pytest.raises((TypeError, ValueError)) as sim_error:
        getattr(sim, op)(*args)
    assert sim._sim_launch_count() == launches, "a kernel ran on rejected input"
    assert (type(sim_error.value), str(sim_error.value)) == (type(cpu_error.value), str(cpu_error.value))


def _noncontig(t):
    # Same values, transposed storage.
    return t.transpose(-1, -2).contiguous().transpose(-1, -2)


NONCONTIG = {
    "eca": lambda g: ("_eca_fwd", (_noncontig(torch.randn(2, 3, 5, 6, generator=g)), torch.randn(3, generator=g))),
    "layernorm2d": lambda g: ("_layernorm2d_fwd", (_noncontig(torch.randn(2, 3, 5, 6, generator=g)),
                                                   torch.randn(3, generator=g), torch.randn(3, generator=g), 1e-6)),
    # channels-last: the CPU kernel's in-place pixel path; the CUDA glue makes it contiguous.
    "gelu_layernorm2d": lambda g: ("_gelu_layernorm2d_fwd", (
        torch.randn(2, 3, 5, 6, generator=g).contiguous(memory_format=torch.channels_last),
        torch.randn(3, generator=g), torch.randn(3, generator=g), 1e-6, "none")),
    "patch2img": lambda g: ("_patch2img_fwd", (_noncontig(torch.randn(1, 4, 2, 3, 3, generator=g)), 5, 5, 2)),
    "knn": lambda g: ("_cross_scale_knn_fwd", (_noncontig(torch.randn(1, 2, 7, 8, generator=g)),
                                               torch.randn(1, 2, 6, 6, generator=g)[..., ::1, :], 2, 3, 1, 2, 1)),
    "gather": lambda g: ("_gather_patches_fwd", (_noncontig(torch.randn(1, 2, 6, 6, generator=g)),
                                                 torch.tensor([[0, 0, 0], [0, 2, 3]]), torch.tensor([1, 0]), 3)),
}


@pytest.mark.parametrize("name", sorted(NONCONTIG))
def test_non_contiguous_inputs(sim, name):
    op, args = NONCONTIG[name](_g())
    assert not args[0].is_contiguous()
    got, want = getattr(sim, op)(*args), getattr(cpu_ops, op)(*args)
    for a, b in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        torch.testing.assert_close(a, b)
