"""One wording for one mistake: the Python checks (sr_ops/_validate.py) of the references and
the public and private ops, and the C++ checks (csrc/check.h) of the kernels, raise the same
exception class with the same message. The CUDA glue's are compared with the CPU kernels'
in python_tests/cuda_sim/test_glue_validation.py."""
from __future__ import annotations

import pytest
import torch

import sr_ops
from sr_ops import _validate as v
from sr_ops import reference
from sr_ops.reference.cross_scale_knn_backward import cross_scale_knn_backward as reference_knn_backward

pytestmark = pytest.mark.skipif("cpu" not in sr_ops.available_backends(), reason="extension not built")

K = torch.ops.sr_ops  # the kernels, and the private ops
G = torch.Generator().manual_seed(0)
X, W, B = torch.randn(2, 4, 3, 3, generator=G), torch.randn(4, generator=G), torch.randn(4, generator=G)
Z, Q = torch.randn(2, 3, 4, 5, 5, generator=G), torch.randn(2, 4, 3, 3, generator=G)
QUERY, KEY = torch.randn(1, 2, 7, 7, generator=G), torch.randn(1, 2, 6, 6, generator=G)


def _knn_backward_args(bad_value):
    _, idx = K._cross_scale_knn_fwd(QUERY, KEY, 2, 3, 1, -1, 1)
    idx = idx.clone()
    idx[0, 3, 1] = bad_value
    return torch.randn(idx.shape, generator=G), idx, QUERY, KEY, 3, 1


def _graph_aggregate_args():
    feat = torch.randn(1, 2, 8, 8, generator=G)
    idx = torch.randint(0, 4, (1, 36, 2), generator=G)
    idx[0, 5, 0] = 4  # the (4, 4) key map with p=3, t=1 has 2 x 2 patches
    return feat, idx, feat.clone()


FEAT, GIDX, QFEAT = _graph_aggregate_args()

# Each case: calls that make one mistake; every one must raise the first one's error.
CASES = [
    pytest.param([lambda: sr_ops.layernorm2d(X, W[:3], B), lambda: reference.layernorm2d(X, W[:3], B),
                  lambda: K._layernorm2d_fwd(X, W[:3], B, 1e-6)], id="layernorm2d-weight-shape"),
    pytest.param([lambda: sr_ops.layernorm2d(X[0], W, B), lambda: reference.layernorm2d(X[0], W, B),
                  lambda: K._layernorm2d_fwd(X[0], W, B, 1e-6)], id="layernorm2d-x-dims"),
    pytest.param([lambda: sr_ops.layernorm2d(X.int(), W, B), lambda: K._layernorm2d_fwd(X.int(), W, B, 1e-6)],
                 id="layernorm2d-integer-x"),
    pytest.param([lambda: K.layernorm2d(X, W.double(), B, 1e-6), lambda: K._layernorm2d_fwd(X, W.double(), B, 1e-6)],
                 id="layernorm2d-op-dtypes-differ"),
    pytest.param([lambda: K.layernorm2d_backward(X[:1], X, W, B, 1e-6),
                  lambda: K._layernorm2d_bwd(X[:1], X, W, B, 1e-6)], id="layernorm2d-backward-grad-shape"),
    pytest.param([lambda: sr_ops.gelu_layernorm2d(X, W, B, approximate="erf"),
                  lambda: K._gelu_layernorm2d_fwd(X, W, B, 1e-6, "erf")], id="gelu-approximate"),
    pytest.param([lambda: K.adapn(Z, Q.double(), 1e-5), lambda: K._adapn_fwd(Z, Q.double(), 1e-5)],
                 id="adapn-op-dtypes-differ"),
    pytest.param([lambda: K.adapn_backward(Z[:1], Z, Q, 1e-5), lambda: K._adapn_bwd(Z[:1], Z, Q, 1e-5)],
                 id="adapn-backward-grad-shape"),
    pytest.param([lambda: K.eca(X, W[:3].double()), lambda: K._eca_fwd(X, W[:3].double())], id="eca-op-dtypes-differ"),
    pytest.param([lambda: sr_ops.vertex_map(torch.tensor([0, -1, 16, 3]), (9, 9), 2, 3, 2),
                  lambda: reference.vertex_map(torch.tensor([0, -1, 16, 3]), (9, 9), 2, 3, 2),
                  lambda: K._vertex_map_fwd(torch.tensor([0, -1, 16, 3]), 9, 9, 2, 3, 2)],
                 id="vertex-map-idx-outside-the-key-grid"),
    pytest.param([lambda: sr_ops.vertex_map(torch.tensor([1]), (2, 9), 2, 3, 2),
                  lambda: K._vertex_map_fwd(torch.tensor([1]), 2, 9, 2, 3, 2)], id="vertex-map-patch-larger-than-key"),
    pytest.param([lambda: sr_ops.class_dispatch(torch.tensor([0, 3, 1]), 3),
                  lambda: K._class_dispatch_fwd(torch.tensor([0, 3, 1]), 3)], id="class-dispatch-id-too-large"),
    pytest.param([lambda: sr_ops.cross_scale_knn(QUERY, KEY, 5, 3, 2, None),
                  lambda: reference.cross_scale_knn(QUERY, KEY, 5, 3, 2, None),
                  lambda: K._cross_scale_knn_fwd(QUERY, KEY, 5, 3, 2, -1, 2)], id="knn-k-above-the-candidates"),
    pytest.param([lambda: sr_ops.cross_scale_knn(QUERY, KEY, 1, 9, 1, None),
                  lambda: K._cross_scale_knn_fwd(QUERY, KEY, 1, 9, 1, -1, 2)], id="knn-patch-larger-than-query"),
    pytest.param([lambda: sr_ops.cross_scale_knn(QUERY, KEY[:, :1], 1, 3, 1, None),
                  lambda: K._cross_scale_knn_fwd(QUERY, KEY[:, :1], 1, 3, 1, -1, 2)], id="knn-key-channels"),
    pytest.param([lambda: K.cross_scale_knn_backward(*_knn_backward_args(16)),
                  lambda: reference_knn_backward(*_knn_backward_args(16)),
                  lambda: K._cross_scale_knn_bwd(*_knn_backward_args(16))], id="knn-backward-idx-too-large"),
    pytest.param([lambda: K.cross_scale_knn_backward(*_knn_backward_args(-1)),
                  lambda: K._cross_scale_knn_bwd(*_knn_backward_args(-1))], id="knn-backward-idx-negative"),
    pytest.param([lambda: sr_ops.graph_aggregate(FEAT, GIDX, QFEAT, (4, 4), 2, 3, 1),
                  lambda: K._graph_aggregate_fwd(FEAT, GIDX, QFEAT, None, 4, 4, 2, 3, 1, True, 1e-5)],
                 id="graph-aggregate-idx-outside-the-key-grid"),
    pytest.param([lambda: sr_ops.patch2img(torch.randn(1, 15, 2, 3, 3), (9, 9), 3, 2),
                  lambda: K._patch2img_fwd(torch.randn(1, 15, 2, 3, 3), 9, 9, 2)], id="patch2img-patch-count"),
    pytest.param([lambda: sr_ops.dwconv_gate_ca(X[:, :3], torch.randn(3, 1, 3, 3), W[:3], torch.randn(1, 1, 1, 1),
                                                W[:1]),
                  lambda: K._dwconv_gate_ca_fwd(X[:, :3], torch.randn(3, 1, 3, 3), W[:3], torch.randn(1, 1, 1, 1),
                                                W[:1], True)], id="dwconv-gate-odd-channels"),
]


@pytest.mark.parametrize("calls", CASES)
def test_one_mistake_one_error(calls):
    errors = []
    for call in calls:
        with pytest.raises((TypeError, ValueError)) as info:
            call()
        errors.append(info.value)
    first = errors[0]
    for e in errors[1:]:
        assert (type(e), str(e)) == (type(first), str(first))


def test_messages_name_the_argument_and_what_was_received():
    with pytest.raises(TypeError, match=r"^w must be a torch.Tensor, got list$"):
        v.tensor([1.0], "w")
    with pytest.raises(ValueError, match=r"^idx values must lie in \[0, 3\) \(the rows\), got \[-2, 5\]$"):
        v.index_range(torch.tensor([5, -2, 0]), 3, "idx", "the rows")
    with pytest.raises(TypeError, match=r"^a and c must share a dtype, got torch.float32 and torch.float64$"):
        v.same_dtype(a=X, b=X, c=X.double())
    with pytest.raises(ValueError, match=r"^patch_size must be at most img's height and width \(3, 5\), got 4$"):
        v.patch_fits(4, (3, 5), "img")
    assert v.grid(9, 3, 2) == 4 and v.grid(3, 3, 5) == 1


def test_private_backward_ops_check_indices_before_the_kernels_write():
    """A direct call of a private op with an out-of-range index raises instead of writing
    out of bounds (on a GPU the kernels scatter with atomics at those indices)."""
    coords = torch.tensor([[0, 0, 0], [0, 9, 0]])
    order = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="coords row values must lie in"):
        K.gather_patches_backward(torch.randn(2, 1, 3, 3), coords, order, [1, 1, 8, 8])
    with pytest.raises(ValueError, match="coords row values must lie in"):
        K._gather_patches_bwd(torch.randn(2, 1, 3, 3), coords, order, 1, 8, 8)
    with pytest.raises(ValueError, match="order values must lie in"):
        K.merge_patches_backward(torch.randn(1, 1, 16, 16), coords[:1], torch.tensor([1]), 3, 2)
    with pytest.raises(ValueError, match="order values must lie in"):
        K._merge_patches_bwd(torch.randn(1, 1, 16, 16), coords[:1], torch.tensor([1]), 3, 2)


def _index_checks(monkeypatch) -> list[str]:
    """The names of the index tensors that the Python checks read, call by call."""
    seen, real = [], v.index_range

    def counted(idx, n, name, what=""):
        seen.append(name)
        return real(idx, n, name, what)

    monkeypatch.setattr(v, "index_range", counted)
    return seen


@pytest.mark.parametrize("backend", ["cpu", "reference", "triton"])
def test_index_values_are_read_once_per_kernel_call(backend, monkeypatch):
    """The C++ kernels check index values themselves, so the Python side reads them only in
    front of the reference and Triton kernels: one reduction (a GPU synchronisation) per call."""
    if backend not in sr_ops.available_backends():
        pytest.skip(f"{backend} backend not available here")
    feat = torch.randn(1, 2, 8, 8, generator=G, requires_grad=True)
    idx = torch.randint(0, 4, (1, 36, 2), generator=G)
    coords, order = torch.tensor([[0, 1, 2], [0, 4, 0]]), torch.tensor([1, 0])
    query = QUERY.clone().requires_grad_()
    seen = _index_checks(monkeypatch)
    with sr_ops.use_backend(backend):
        sr_ops.gather_patches(feat, coords, order, 3).sum().backward()
        sr_ops.graph_aggregate(feat, idx, feat.detach(), (4, 4), 2, 3, 1).sum().backward()
        sr_ops.cross_scale_knn(query, KEY, 2, 3, 1, None)[0].sum().backward()
    # five kernel calls read indices: gather forward and backward, graph_aggregate forward and
    # backward, the knn backward
    assert seen == ([] if backend == "cpu" else ["order", "order", "idx", "idx", "idx"])


def test_scalar_type_misuse_is_a_type_error_and_a_bad_value_a_value_error():
    """One rule for the scalars: TypeError for the wrong type, ValueError for the wrong value
    (issue 31, item 11); the message names what was passed, type and value."""
    import numpy as np

    with pytest.raises(TypeError, match=r"^eps must be a finite non-negative number, got str 'a'$"):
        sr_ops.layernorm2d(X, W, B, eps="a")
    with pytest.raises(TypeError, match="got NoneType"):
        v.eps(None)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="eps must be a finite non-negative number"):
            sr_ops.layernorm2d(X, W, B, eps=bad)
    assert v.eps(np.float32(1e-3)) == np.float32(1e-3)
    dw, cw = torch.randn(4, 1, 3, 3), torch.randn(2, 2, 1, 1)
    with pytest.raises(TypeError, match=r"^gate must be a bool, got int 1$"):
        sr_ops.dwconv_gate_ca(X, dw, W, cw, W[:2], gate=1)
    with pytest.raises(TypeError, match=r"^gate must be a bool, got numpy.bool_?$"):
        sr_ops.dwconv_gate_ca(X, dw, W, cw, W[:2], gate=np.bool_(True))
    with pytest.raises(TypeError, match=r"approximate must be 'none' or 'tanh' \(as F.gelu\), got int 1$"):
        sr_ops.gelu_layernorm2d(X, W, B, approximate=1)
    with pytest.raises(ValueError, match=r"got 'erf'$"):
        sr_ops.gelu_layernorm2d(X, W, B, approximate="erf")
    with pytest.raises(TypeError, match=r"^stride must be an int, got float 2.0$"):
        v.positive_int(2.0, "stride")
    with pytest.raises(ValueError, match="stride must be positive, got 0"):
        v.positive_int(0, "stride")
    with pytest.raises(TypeError, match=r"^out_size must be a pair \(H, W\) of positive ints, got int 9$"):
        v.int_pair(9, "out_size")
    with pytest.raises(ValueError, match=r"got \(1, 2, 3\)$"):
        v.int_pair((1, 2, 3), "out_size")


# (private schema, its public backward op or None, arguments with grad_out first)
GRAD_CASES = [
    pytest.param(lambda: K._layernorm2d_bwd, lambda: K.layernorm2d_backward, (X, X, W, B, 1e-6), id="layernorm2d"),
    pytest.param(lambda: K._eca_bwd, lambda: K.eca_backward, (X, X, W[:3]), id="eca"),
    pytest.param(lambda: K._dwconv_gate_ca_bwd, lambda: K.dwconv_gate_ca_backward,
                 (X[:, :2], X, torch.randn(4, 1, 3, 3), W, torch.randn(2, 2, 1, 1), W[:2], True), id="dwconv_gate_ca"),
]


@pytest.mark.parametrize("private, public, args", GRAD_CASES)
def test_backwards_take_a_gradient_of_x_dtype_only(private, public, args):
    """An int64 (or other-dtype) grad_out is a TypeError, from the private schema and the
    backward custom op alike (it was read silently; issue 31, item 11)."""
    for dtype in (torch.int64, torch.float64):
        bad = (args[0].to(dtype), *args[1:])
        errors = []
        for op in (private(), public()):
            with pytest.raises(TypeError) as info:
                op(*bad)
            errors.append(str(info.value))
        assert errors[0] == errors[1] == f"x and grad_out must share a dtype, got torch.float32 and {dtype}"


@pytest.mark.parametrize("name, args", [
    ("_layernorm2d_fwd", (X, W, B, 1e-6)),
    ("_layernorm2d_bwd", (X, X, W, B, 1e-6)),
    ("_eca_fwd", (X, W[:3])),
    ("_dwconv_gate_ca_fwd", (X, torch.randn(4, 1, 3, 3), W, torch.randn(2, 2, 1, 1), W[:2], True)),
])
def test_private_schemas_reject_meta_tensors_with_a_value_error(name, args):
    """Not the dispatcher's NotImplementedError: the device class every check uses."""
    meta = tuple(a.to("meta") if isinstance(a, torch.Tensor) else a for a in args)
    first = "grad_out" if name.endswith("_bwd") else "x"
    with pytest.raises(ValueError, match=rf"^{first} must be a CPU or CUDA tensor, got meta$"):
        getattr(K, name)(*meta)


@pytest.mark.parametrize("shape", [(0, 4, 3, 3), (2, 4, 0, 3), (2, 4, 3, 0)], ids=["B0", "H0", "W0"])
def test_layernorm2d_zero_sizes_give_empty_results_on_every_face(shape):
    x = torch.randn(shape, requires_grad=True)
    w, b = torch.randn(4, requires_grad=True), torch.randn(4, requires_grad=True)
    for call in (lambda: reference.layernorm2d(x, w, b), lambda: K.layernorm2d(x, w, b, 1e-6),
                 lambda: K._layernorm2d_fwd(x.detach(), w.detach(), b.detach(), 1e-6)):
        assert call().shape == shape
    for backend in sr_ops.available_backends():
        with sr_ops.use_backend(backend):
            out = sr_ops.layernorm2d(x, w, b)
            assert out.shape == shape
            gx, gw, gb = torch.autograd.grad(out.sum(), (x, w, b))
            assert gx.shape == shape and not gw.any() and not gb.any()
    gx, gw, gb = K._layernorm2d_bwd(torch.randn(shape), x.detach(), w.detach(), b.detach(), 1e-6)
    assert gx.shape == shape and not gw.any() and not gb.any()


def test_layernorm2d_zero_channels_raise_on_every_face():
    x, w = torch.randn(2, 0, 3, 3), torch.randn(0)
    for call in (lambda: sr_ops.layernorm2d(x, w, w), lambda: reference.layernorm2d(x, w, w),
                 lambda: K.layernorm2d(x, w, w, 1e-6), lambda: K._layernorm2d_fwd(x, w, w, 1e-6),
                 lambda: K._layernorm2d_bwd(x, x, w, w, 1e-6)):
        with pytest.raises(ValueError, match=r"^x must have at least one channel \(layernorm2d needs C >= 1\)"):
            call()
