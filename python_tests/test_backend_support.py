"""What each backend declares it can take (sr_ops.backends.Kernel), and how selection uses
it: the reasons list of a forced backend, fallbacks past a kernel's limits, and
deterministic mode."""
import importlib
import re
import warnings
from pathlib import Path

import pytest
import torch

import sr_ops
from sr_ops import backends

# The modules (sr_ops.ops re-exports each op's function under the module's name).
knn_op = importlib.import_module("sr_ops.ops.cross_scale_knn")
ln_op = importlib.import_module("sr_ops.ops.layernorm2d")
merge_op = importlib.import_module("sr_ops.ops.merge_patches")
gather_op = importlib.import_module("sr_ops.ops.gather_patches")

CUDA = torch.device("cuda")


@pytest.fixture
def all_usable(monkeypatch):
    """Every backend usable and able to take CUDA tensors: selection as on a GPU machine, so
    the declarations can be checked here (no kernel runs)."""
    monkeypatch.setattr(backends, "_usable", lambda name: True)
    monkeypatch.setattr(backends, "_warned_deterministic", set())
    monkeypatch.delenv("SR_OPS_BACKEND", raising=False)


@pytest.fixture
def deterministic():
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def _knn_args(k):
    q = torch.randn(1, 2, 9, 9)
    return (q, q, k, 3, 1, -1, 2, -1)


def test_forced_backend_lists_every_backends_reasons():
    if "cpu" not in sr_ops.available_backends():
        pytest.skip("extension not built")
    q = torch.randn(1, 2, 9, 9, dtype=torch.float16)
    with sr_ops.use_backend("cpu"), pytest.raises(RuntimeError) as err:
        torch.ops.sr_ops.cross_scale_knn(q, q, 2, 3, 1, -1, 2, -1)
    msg = str(err.value)
    assert "sr_ops backend 'cpu' cannot run sr_ops.cross_scale_knn on these inputs" in msg
    assert "cpu: float16 not supported (takes float32, float64)" in msg
    assert "reference: can run" in msg and "cuda: " in msg and "triton: " in msg


def test_cuda_knn_past_its_k_limit_falls_back_to_triton(all_usable):
    table = knn_op._forward.impls
    assert backends.select("cross_scale_knn", CUDA, table, _knn_args(32)) == "cuda"
    assert backends.select("cross_scale_knn", CUDA, table, _knn_args(40)) == "triton"
    with sr_ops.use_backend("cuda"), pytest.raises(RuntimeError, match=r"cuda: k=40 > 32.*triton: can run"):
        backends.select("cross_scale_knn", CUDA, table, _knn_args(40))


def test_triton_layernorm2d_declares_its_channel_tile(all_usable):
    x, w = torch.empty(1, 5000, 2, 2), torch.empty(5000)
    assert ln_op.triton_channel_limit(torch.empty(1, 4096, 2, 2), w) is None
    with sr_ops.use_backend("triton"), pytest.raises(RuntimeError, match=r"triton: C=5000 > 4096"):
        backends.select("layernorm2d", CUDA, ln_op._forward.impls, (x, w, w, 1e-6))
    # backward: grad_out first, also 4-D
    with sr_ops.use_backend("triton"), pytest.raises(RuntimeError, match=r"triton: C=5000 > 4096"):
        backends.select("layernorm2d", CUDA, ln_op._backward.impls, (x, x, w, w, 1e-6))


def _atomic_table():
    """A table whose GPU kernels declare atomics (no sr_ops op has one of its own to spare:
    the knn and graph_aggregate backwards became deterministic)."""
    fn = lambda *a: None  # noqa: E731
    return {"reference": fn, "cuda": backends.Kernel(fn, deterministic=False),
            "triton": backends.Kernel(fn, deterministic=False)}


def test_deterministic_mode_passes_over_atomic_kernels_once_warned(all_usable, deterministic):
    table, args = _atomic_table(), (torch.randn(1, 49, 2),)
    with pytest.warns(UserWarning, match=r"atomic_op: deterministic algorithms are on.*'cuda'.*reference"):
        assert backends.select("atomic_op", CUDA, table, args) == "reference"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backends.select("atomic_op", CUDA, table, args) == "reference"  # warned once
    # deterministic kernels are still chosen
    assert backends.select("layernorm2d", CUDA, ln_op._backward.impls, (torch.randn(1, 3, 2, 2),)) == "cuda"
    with sr_ops.use_backend("cuda"), pytest.raises(RuntimeError, match="cuda: accumulates with atomics"):
        backends.select("atomic_op", CUDA, table, args)


def test_without_deterministic_mode_the_atomic_kernels_run(all_usable):
    assert not torch.are_deterministic_algorithms_enabled()
    assert backends.select("atomic_op", CUDA, _atomic_table(), (torch.randn(1, 4, 2),)) == "cuda"


@pytest.mark.parametrize("op", ["cross_scale_knn", "graph_aggregate"])
def test_deterministic_mode_keeps_the_gather_backwards(all_usable, deterministic, op):
    """Their GPU backwards gather through an inverse index (no atomics): deterministic mode
    keeps the fused kernels, with no warning, and forcing either one is allowed."""
    table = importlib.import_module(f"sr_ops.ops.{op}")._backward.impls
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backends.select(op, CUDA, table, (torch.randn(1, 4, 2),)) == "cuda"
        for name in ("cuda", "triton"):
            with sr_ops.use_backend(name):
                assert backends.select(op, CUDA, table, (torch.randn(1, 4, 2),)) == name


def test_triton_knn_backward_runs_in_deterministic_mode_on_the_cpu(deterministic):
    """The real path on this machine: forward and backward in the Triton interpreter, chosen
    in deterministic mode, against the reference."""
    if "triton" not in sr_ops.available_backends():
        pytest.skip("triton not usable here (needs TRITON_INTERPRET=1 and triton)")
    q = torch.randn(1, 2, 9, 9, requires_grad=True)
    key = torch.randn(1, 2, 9, 9)
    with sr_ops.use_backend("triton"):
        dist, _ = sr_ops.cross_scale_knn(q, key, k=2, patch_size=3, stride=2, window=None)
        dist.sum().backward()
    q2 = q.detach().clone().requires_grad_(True)
    with sr_ops.use_backend("reference"):
        dist2, _ = sr_ops.cross_scale_knn(q2, key, k=2, patch_size=3, stride=2, window=None)
        dist2.sum().backward()
    torch.testing.assert_close(q.grad, q2.grad)


def test_cpu_kernels_are_deterministic_and_still_chosen(deterministic):
    if "cpu" not in sr_ops.available_backends():
        pytest.skip("extension not built")
    img = torch.randn(1, 3, 20, 20, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        patches, coords = sr_ops.extract_patches(img, 8, 6)
        order = torch.arange(patches.shape[0])
        out = sr_ops.merge_patches(patches, coords, order, (1, 20, 20), 1)
        out.sum().backward()
    assert backends.select("merge_patches", img.device, merge_op._forward.impls, (patches,)) == "cpu"
    torch.testing.assert_close(out, img.detach())


def test_deterministic_mode_keeps_the_patch_pastes_on_the_gpu(all_usable, deterministic):
    """gather_patches' backward and merge_patches' forward sum each pixel's windows in a fixed
    order on CUDA and Triton (output-stationary, no atomics): deterministic mode keeps them."""
    x = (torch.randn(2, 3, 4, 4),)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backends.select("merge_patches", CUDA, merge_op._forward.impls, x) == "cuda"
        assert backends.select("gather_patches", CUDA, gather_op._backward.impls, x) == "cuda"
        with sr_ops.use_backend("triton"):
            assert backends.select("merge_patches", CUDA, merge_op._forward.impls, x) == "triton"
            assert backends.select("gather_patches", CUDA, gather_op._backward.impls, x) == "triton"


def test_patch_kernels_use_no_atomics():
    """The ClassSR ops' GPU kernels place and sum in fixed orders: no atomic at all (integer
    ones included: class_dispatch's counts are per-block tables, prefix-summed)."""
    root = Path(sr_ops.__file__).resolve().parents[1]
    files = [f"sr_ops/triton/{op}.py" for op in ("gather_patches", "merge_patches", "class_dispatch")]
    files += [f"csrc/cuda/{op}.cu" for op in ("gather_patches", "merge_patches", "class_dispatch")]
    for path in files:
        assert not re.search(r"tl\.atomic_\w+|\batomic\w*\s*\(", (root / path).read_text()), path
