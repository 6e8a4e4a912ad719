"""cross_scale_knn: windowed k-nearest-neighbour patch matching between two feature maps."""
from __future__ import annotations

import torch

from sr_ops import _validate as v
from sr_ops.backends import BackendTable, Kernel, lazy, native
from sr_ops.reference.cross_scale_knn import _window_rule, check, check_backward, grid


# Below the public function, `scale` is the window rule's divisor (the only use of the
# scale), and window_offset < 0 means window // 2.
def _reference_fwd(query, key, k, patch_size, stride, window, scale, window_offset):
    from sr_ops.reference.cross_scale_knn import cross_scale_knn

    rule = None if window_offset < 0 else (scale, window_offset)
    with torch.no_grad():
        return cross_scale_knn(query, key, k, patch_size, stride, None if window <= 0 else window, scale,
                               window_start=rule)


def _reference_bwd(*args):
    from sr_ops.reference.cross_scale_knn_backward import cross_scale_knn_backward

    return cross_scale_knn_backward(*args)  # checks its arguments, idx's values too


def _bwd_values(grad_dist, idx, query, key, patch_size, stride):
    n = grid(key.shape[-2], patch_size, stride) * grid(key.shape[-1], patch_size, stride)
    v.index_range(idx, n, "idx", "the key patches")  # the kernels write at idx


CUDA_MAX_K = 32  # sr_cuda::kKnnMaxK (csrc/cuda/cross_scale_knn.cuh): each thread's top-k list


def _cuda_k_limit(query, key, k, *rest):
    return f"k={k} > {CUDA_MAX_K}" if k > CUDA_MAX_K else None


_forward = BackendTable(
    "cross_scale_knn",
    reference=_reference_fwd,
    # float16/bfloat16 CPU inputs are upcast by the public function, not by the kernel
    cpu=Kernel(native("_cross_scale_knn_fwd"), dtypes=(torch.float32, torch.float64)),
    cuda=Kernel(native("_cross_scale_knn_fwd"), limits=_cuda_k_limit),
    triton=lazy("sr_ops.triton.cross_scale_knn", "cross_scale_knn_fwd"),
)
# The GPU backwards gather (no atomics: deterministic), the key's side through an inverse index.
_backward = BackendTable(
    "cross_scale_knn",
    reference=_reference_bwd,
    cpu=native("_cross_scale_knn_bwd"),
    cuda=native("_cross_scale_knn_bwd"),
    triton=lazy("sr_ops.triton.cross_scale_knn_backward", "cross_scale_knn_bwd"),
    values=_bwd_values,
    values_checked_by=("cpu", "cuda", "reference"),
)


@torch.library.custom_op("sr_ops::cross_scale_knn", mutates_args=())
def _knn_op(query: torch.Tensor, key: torch.Tensor, k: int, patch_size: int, stride: int,
            window: int, scale: int, window_offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    check(query, key, k, patch_size, stride, None if window <= 0 else window, scale)
    return _forward(query.device, query.contiguous(), key.contiguous(), k, patch_size, stride, window, scale,
                    window_offset)


@_knn_op.register_fake
def _(query, key, k, patch_size, stride, window, scale, window_offset):
    m, _ = check(query, key, k, patch_size, stride, None if window <= 0 else window, scale)
    B = query.shape[0]
    return query.new_empty(B, m, k), query.new_empty(B, m, k, dtype=torch.int64)


@torch.library.custom_op("sr_ops::cross_scale_knn_backward", mutates_args=())
def _knn_backward_op(grad_dist: torch.Tensor, idx: torch.Tensor, query: torch.Tensor, key: torch.Tensor,
                     patch_size: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    check_backward(grad_dist, idx, query, key, patch_size, stride, values=False)  # values: by _backward
    return _backward(query.device, grad_dist.contiguous(), idx.contiguous(), query.contiguous(),
                     key.contiguous(), patch_size, stride)


@_knn_backward_op.register_fake
def _(grad_dist, idx, query, key, patch_size, stride):
    check_backward(grad_dist, idx, query, key, patch_size, stride, values=False)
    return torch.empty_like(query), torch.empty_like(key)


def _setup_ctx(ctx, inputs, output):
    query, key, _, ctx.patch_size, ctx.stride, _, _, _ = inputs
    ctx.save_for_backward(query, key, output[1])


def _grad(ctx, grad_dist, _grad_idx):
    query, key, idx = ctx.saved_tensors
    gq, gk = _knn_backward_op(grad_dist, idx, query, key, ctx.patch_size, ctx.stride)
    return gq, gk, None, None, None, None, None, None


_knn_op.register_autograd(_grad, setup_context=_setup_ctx)


def cross_scale_knn(query: torch.Tensor, key: torch.Tensor, k: int = 5, patch_size: int = 3,
                    stride: int = 2, window: int | None = 30, scale: int = 2,
                    window_start: tuple[int, int] | None = None):
    """For every p×p query patch, the k nearest p×p key patches inside its window.

    Args:
        query: (B, C, H, W) embedding of the LR image; patches on an m1×m2 grid with
            stride ``stride`` (``m1 = (H - p)//stride + 1``), m = m1·m2, row-major.
        key: (B, C, Hk, Wk) embedding of the LR image downscaled by ``scale``; grid n1×n2.
        k: neighbours per query.
        window: query patch (i, j) searches key patches (a, b) with
            ``a0 <= a < a0 + min(window, n1)``, ``a0 = clamp(i//scale - window//2, 0, n1 - w1)``
            (columns likewise); ``None`` searches every key patch.
        window_start: ``(d, o)`` places the window at ``a0 = clamp(i//d - o, 0, n1 - w1)``
            instead (columns likewise); default ``(scale, window // 2)``. The official IGNN
            code uses ``(2, window // scale)``.

    Returns:
        dist: (B, m, k) squared L2 distances between the flattened C·p·p patch vectors,
            ascending; float32 (float64 for float64 inputs). Differentiable in query and key.
        idx: (B, m, k) int64 key-patch numbers ``a·n2 + b``; ties go to the smaller number.

    The fused backends tile the queries and never build the m×n distance matrix or the
    unfolded patches.
    """
    check(query, key, k, patch_size, stride, window, scale)
    divisor, offset = scale, -1
    if window_start is not None:
        divisor, offset = _window_rule(window_start)
    if query.dtype in (torch.float16, torch.bfloat16) and query.device.type == "cpu":
        query, key = query.float(), key.float()
    dist, idx = _knn_op(query, key, k, patch_size, stride, -1 if window is None else window, divisor, offset)
    if dist.dtype in (torch.float16, torch.bfloat16):
        dist = dist.float()
    return dist, idx
