"""adapn: adaptive patch normalisation, each neighbour patch given its query's statistics."""
from __future__ import annotations

import torch

from sr_ops import _validate as v
from sr_ops import reference
from sr_ops.backends import BackendTable, lazy
from sr_ops.ops._autograd import register_closed_form_autograd
from sr_ops.reference.adapn import _check as _check_reference
from sr_ops.reference.adapn import patch_stats


# The reference backend works on contiguous copies so that its outputs have the
# contiguous strides the fake kernels promise, as the compiled kernels' do.
def _reference_fwd(neighbors, query, eps):
    return reference.adapn(neighbors.contiguous(), query.contiguous(), eps)


def _reference_bwd(grad_out, neighbors, query, eps):
    """The gradient in closed form (csrc/kernels/adapn.h derives it), in plain torch ops:
    autograd cannot record inside a custom op's kernel, which runs below the autograd key."""
    dtype = torch.promote_types(neighbors.dtype, torch.float32)
    z, q, g = neighbors.to(dtype), query.to(dtype).unsqueeze(-4), grad_out.to(dtype)
    PP, pp = z.shape[-2] * z.shape[-1], q.shape[-2] * q.shape[-1]
    mean_z, var_z = patch_stats(z)
    mean_q, var_q = patch_stats(q)
    inv_std_z, std_q = torch.rsqrt(var_z + eps), torch.sqrt(var_q + eps)
    x = (z - mean_z) * inv_std_z
    sum_g, sum_gx = g.sum((-2, -1), keepdim=True), (g * x).sum((-2, -1), keepdim=True)
    gz = std_q * inv_std_z * (g - sum_g / PP - x * sum_gx / (PP - 1))
    # Through mean_q and std_q, summed over the k neighbours sharing the query.
    gq = sum_g.sum(-4) / pp + sum_gx.sum(-4) * (q - mean_q).squeeze(-4) / ((pp - 1) * std_q.squeeze(-4))
    return gz.to(neighbors.dtype).contiguous(), gq.to(query.dtype).contiguous()




_forward = BackendTable(
    "adapn",
    reference=_reference_fwd,
    native="_adapn_fwd",
    triton=lazy("sr_ops.triton.adapn", "adapn_fwd"),
)
_backward = BackendTable(
    "adapn",
    reference=_reference_bwd,
    native="_adapn_bwd",
    triton=lazy("sr_ops.triton.adapn", "adapn_bwd"),
)


def _check(neighbors, query, eps):
    """The reference's checks, plus one dtype: the public function promotes before the op."""
    _check_reference(neighbors, query, eps)
    v.same_dtype(neighbors=neighbors, query=query)


@torch.library.custom_op("sr_ops::adapn", mutates_args=())
def _adapn_op(neighbors: torch.Tensor, query: torch.Tensor, eps: float) -> torch.Tensor:
    _check(neighbors, query, eps)
    return _forward(neighbors.device, neighbors, query, eps)


@_adapn_op.register_fake
def _(neighbors, query, eps):
    _check(neighbors, query, eps)
    return torch.empty_like(neighbors, memory_format=torch.contiguous_format)


@torch.library.custom_op("sr_ops::adapn_backward", mutates_args=())
def _adapn_backward_op(grad_out: torch.Tensor, neighbors: torch.Tensor, query: torch.Tensor,
                       eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    _check(neighbors, query, eps)
    v.shape_like(grad_out, "grad_out", neighbors.shape, "neighbors")
    return _backward(neighbors.device, grad_out, neighbors, query, eps)


@_adapn_backward_op.register_fake
def _(grad_out, neighbors, query, eps):
    return (torch.empty_like(neighbors, memory_format=torch.contiguous_format),
            torch.empty_like(query, memory_format=torch.contiguous_format))


register_closed_form_autograd(_adapn_op, _adapn_backward_op, _reference_bwd)


def adapn(neighbors: torch.Tensor, query: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Adaptive patch normalisation: give each neighbour patch its query's statistics.

    Args:
        neighbors: (..., k, C, P, P) float tensor, the k neighbour patches of each query.
        query: (..., C, p, p) with the same leading dims and C (p may differ from P).
        eps: non-negative number added to both variances.

    Returns:
        (..., k, C, P, P) in neighbors' dtype: per channel,
        ``(z - mean_z) / sqrt(var_z + eps) * sqrt(var_q + eps) + mean_q`` with the means and
        unbiased variances over each patch's P·P (or p·p) values. Computed in float32, or
        float64 when either input is float64 (mixed dtypes are promoted first). Differentiable
        in both inputs, each backend with its own backward kernel.
    """
    _check_reference(neighbors, query, eps)
    dtype = torch.promote_types(neighbors.dtype, query.dtype)
    out = _adapn_op(neighbors.to(dtype), query.to(dtype), float(eps))
    return out.to(neighbors.dtype)
