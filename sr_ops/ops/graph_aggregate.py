"""graph_aggregate: IGNN's GraphAgg data path (vertex map + gather + AdaPN + patch2img) fused."""
from __future__ import annotations

import torch

from sr_ops import _validate as v
from sr_ops.backends import BackendTable, lazy
from sr_ops.reference.graph_aggregate import _check as _check_shapes
from sr_ops.reference.graph_aggregate import graph_aggregate as _reference
from sr_ops.reference.vertex_map import key_grid


def _reference_fwd(feat, idx, query_feat, key_hw, scale, patch_size, stride, weights, adapn, eps):
    with torch.no_grad():
        return _reference(feat, idx, query_feat, key_hw, scale, patch_size, stride, weights, adapn, eps)


def _reference_bwd(grad, feat, idx, query_feat, weights, key_hw, scale, patch_size, stride, adapn, eps):
    # torch.func.vjp, not torch.autograd: custom-op kernels run below the autograd key.
    def fn(f, q, *w):
        return _reference(f, idx, q, key_hw, scale, patch_size, stride, w[0] if w else None, adapn, eps)

    _, vjp = torch.func.vjp(fn, feat, query_feat, *([] if weights is None else [weights]))
    grads = vjp(grad)
    return grads[0], grads[1], (grads[2] if weights is not None else feat.new_empty(0))


def _cpp_fwd(feat, idx, query_feat, key_hw, scale, patch_size, stride, weights, adapn, eps):
    return torch.ops.sr_ops._graph_aggregate_fwd(feat, idx, query_feat, weights, key_hw[0], key_hw[1],
                                                 scale, patch_size, stride, adapn, eps)


def _cpp_bwd(grad, feat, idx, query_feat, weights, key_hw, scale, patch_size, stride, adapn, eps):
    return torch.ops.sr_ops._graph_aggregate_bwd(grad, feat, idx, query_feat, weights, key_hw[0], key_hw[1],
                                                 scale, patch_size, stride, adapn, eps)


def _idx_values(idx, key_hw, patch_size, stride):
    n1, n2 = key_grid(key_hw, patch_size, stride)
    v.index_range(idx, n1 * n2, "idx", "the key patches")


def _fwd_values(feat, idx, query_feat, key_hw, scale, patch_size, stride, *_):
    _idx_values(idx, key_hw, patch_size, stride)


def _bwd_values(grad, feat, idx, query_feat, weights, key_hw, scale, patch_size, stride, *_):
    _idx_values(idx, key_hw, patch_size, stride)  # the backward scatters at idx


_forward = BackendTable(
    "graph_aggregate",
    reference=_reference_fwd,
    cpu=_cpp_fwd,
    cuda=_cpp_fwd,
    triton=lazy("sr_ops.triton.graph_aggregate", "graph_aggregate_fwd"),
    values=_fwd_values,
    values_checked_by=("cpu", "cuda", "reference"),  # the reference's vertex_map checks idx
)
# The GPU backwards gather (no atomics: deterministic), grad_feat through an inverse index.
_backward = BackendTable(
    "graph_aggregate",
    reference=_reference_bwd,
    cpu=_cpp_bwd,
    cuda=_cpp_bwd,
    triton=lazy("sr_ops.triton.graph_aggregate", "graph_aggregate_bwd"),
    values=_bwd_values,
    values_checked_by=("cpu", "cuda", "reference"),
)


def _check(feat, idx, query_feat, key_hw, scale, patch_size, stride, weights, eps):
    """Everything but idx's values (checked by the backend table, once, before the kernel)."""
    _check_shapes(feat, idx, query_feat, key_hw, scale, patch_size, stride, weights)
    v.channels(feat, "feat", "graph_aggregate")
    if patch_size < 2:
        raise ValueError(f"patch_size must be at least 2 (AdaPN needs a variance), got {patch_size}")
    if weights is None:
        v.same_dtype(feat=feat, query_feat=query_feat)
    else:
        v.same_dtype(feat=feat, query_feat=query_feat, weights=weights)
    v.eps(eps)


@torch.library.custom_op("sr_ops::graph_aggregate", mutates_args=())
def _op(feat: torch.Tensor, idx: torch.Tensor, query_feat: torch.Tensor, key_hw: list[int], scale: int,
        patch_size: int, stride: int, weights: torch.Tensor | None, adapn: bool, eps: float) -> torch.Tensor:
    _check(feat, idx, query_feat, key_hw, scale, patch_size, stride, weights, eps)
    return _forward(feat.device, feat.contiguous(), idx.long().contiguous(), query_feat.contiguous(), key_hw,
                    scale, patch_size, stride, weights, adapn, eps)


@_op.register_fake
def _(feat, idx, query_feat, key_hw, scale, patch_size, stride, weights, adapn, eps):
    _check(feat, idx, query_feat, key_hw, scale, patch_size, stride, weights, eps)
    B, C, H, W = feat.shape
    if weights is None:
        return feat.new_empty(B, idx.shape[2], C, scale * H, scale * W)
    return feat.new_empty(B, C, scale * H, scale * W)


@torch.library.custom_op("sr_ops::graph_aggregate_backward", mutates_args=())
def _backward_op(grad: torch.Tensor, feat: torch.Tensor, idx: torch.Tensor, query_feat: torch.Tensor,
                 weights: torch.Tensor | None, key_hw: list[int], scale: int, patch_size: int, stride: int,
                 adapn: bool, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _backward(feat.device, grad.contiguous(), feat.contiguous(), idx.long().contiguous(),
                     query_feat.contiguous(), weights, key_hw, scale, patch_size, stride, adapn, eps)


@_backward_op.register_fake
def _(grad, feat, idx, query_feat, weights, key_hw, scale, patch_size, stride, adapn, eps):
    g_w = torch.empty_like(weights) if weights is not None else feat.new_empty(0)
    return torch.empty_like(feat), torch.empty_like(query_feat), g_w


def _setup_ctx(ctx, inputs, output):
    feat, idx, query_feat, key_hw, scale, patch_size, stride, weights, adapn, eps = inputs
    ctx.args = (key_hw, scale, patch_size, stride, adapn, eps)
    ctx.has_weights = weights is not None
    ctx.save_for_backward(feat, idx, query_feat, weights)


def _grad(ctx, grad):
    feat, idx, query_feat, weights = ctx.saved_tensors
    g_feat, g_q, g_w = _backward_op(grad, feat, idx, query_feat, weights if ctx.has_weights else None,
                                    *ctx.args)
    return g_feat, None, g_q, None, None, None, None, (g_w if ctx.has_weights else None), None, None


_op.register_autograd(_grad, setup_context=_setup_ctx)


def graph_aggregate(feat: torch.Tensor, idx: torch.Tensor, query_feat: torch.Tensor, key_hw, scale: int,
                    patch_size: int = 3, stride: int = 2, weights: torch.Tensor | None = None,
                    adapn: bool = True, eps: float = 1e-5) -> torch.Tensor:
    """IGNN's GraphAgg data path in one op: vertex mapping, gather, AdaPN and patch2img.

    Args:
        feat: (B, C, H, W) LR feature whose (s·p)×(s·p) regions are the HR neighbours.
        idx: (B, m, k) int64 key-patch numbers from ``cross_scale_knn`` (m = m1·m2, the
            p×p / stride t query grid of (H, W)).
        query_feat: (B, C, H, W); query patch q = (i, j) is its p×p patch at (t·i, t·j) and
            supplies AdaPN's target statistics.
        key_hw: (Hk, Wk), the key map ``idx`` was searched in (fixes the key grid width).
            Every region must start inside feat (``s·t·(n1 - 1) < H``, n1 × n2 the key
            grid); one that overhangs feat's bottom/right border reads 0 there, in
            AdaPN's statistics too (IGNN's zero-padded maps), and takes no gradient there.
        weights: optional (B, k, s·H, s·W) per-pixel weights of the k neighbours.

    Returns:
        ``weights=None``: (B, k, C, s·H, s·W), each neighbour's folded map; neighbour r of q
        is the region at ``vertex_map(idx[q, r])``, AdaPN-normalised against query patch q
        (if ``adapn``) and placed at (s·t·i, s·t·j), overlaps averaged.
        With ``weights``: (B, C, s·H, s·W), the per-pixel weighted sum over r, computed
        without the per-neighbour maps. Differentiable in feat, query_feat and weights.

    The fused backends never build the (B, m, k, C, s·p, s·p) gathered patches.
    """
    key_hw = [int(key_hw[0]), int(key_hw[1])] if isinstance(key_hw, (tuple, list, torch.Size)) else key_hw
    # idx's values are checked inside the op: reading them here would break torch.compile's graph.
    _check(feat, idx, query_feat, key_hw, scale, patch_size, stride, weights, eps)
    half = feat.dtype in (torch.float16, torch.bfloat16) and feat.device.type == "cpu"
    if half:  # the CPU kernels compute in float32
        dtype = feat.dtype
        feat, query_feat = feat.float(), query_feat.float()
        weights = None if weights is None else weights.float()
    out = _op(feat, idx, query_feat, key_hw, scale, patch_size, stride, weights, bool(adapn), float(eps))
    return out.to(dtype) if half else out
