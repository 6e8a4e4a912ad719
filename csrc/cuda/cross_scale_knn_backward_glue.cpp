// Registers the deterministic cross_scale_knn backward for CUDA tensors: the glue builds
// the inverse index (csrc/cuda/inverse_index.h) and the per-entry offsets with ATen, then
// the kernels gather (csrc/cuda/cross_scale_knn_backward.cu).
#include <torch/library.h>

#include <tuple>

#include "checks/cross_scale_knn.h"
#include "cuda/cross_scale_knn_backward.cuh"
#include "cuda/glue.h"
#include "cuda/inverse_index.h"

namespace {

std::tuple<at::Tensor, at::Tensor> knn_bwd_cuda(const at::Tensor& grad_dist, const at::Tensor& idx_in,
                                                const at::Tensor& query_in, const at::Tensor& key_in,
                                                int64_t patch_size, int64_t stride) {
  sr_cuda::check_device(query_in, "query");
  const auto d = sr_check::knn_backward_dims(grad_dist, idx_in, query_in, key_in, patch_size, stride);
  const sr_cuda::DeviceGuard guard(query_in.device());
  const at::Tensor query = query_in.contiguous(), key = key_in.contiguous(), idx = idx_in.contiguous();
  at::Tensor gq = at::empty_like(query), gk = at::empty_like(key);
  if (query.numel() == 0) return {gq, gk};
  const auto acc = query.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const int64_t k = idx.size(2), m = d.m1 * d.m2, n = d.n1 * d.n2, T = stride;
  const bool wide = sr_cuda::needs_wide({query.numel(), key.numel(), idx.numel() + 1, d.B * n + 1});
  const auto it = wide ? at::kLong : at::kInt;
  const at::Tensor grad = grad_dist.to(acc).contiguous();
  // Offsets in a plane: of each entry's key patch, and of each query patch.
  const at::Tensor kbase = (at::floor_divide(idx, d.n2) * (T * d.Wk) + idx.remainder(d.n2) * T).to(it);
  const at::Tensor q = at::arange(m, idx.options());
  const at::Tensor qbase = (at::floor_divide(q, d.m2) * (T * d.W) + q.remainder(d.m2) * T).view({1, m, 1});
  const auto inv = sr_cuda::inverse_index(idx, n, it);
  const at::Tensor sorted_grad = grad.reshape({-1}).index_select(0, inv.order);
  const at::Tensor sorted_qbase = qbase.expand({d.B, m, k}).reshape({-1}).index_select(0, inv.order).to(it);
  sr_cuda::check_status(
      sr_cuda::cross_scale_knn_grad(grad.const_data_ptr(), kbase.const_data_ptr(), inv.start.const_data_ptr(),
                                    sorted_grad.const_data_ptr(), sorted_qbase.const_data_ptr(), query.const_data_ptr(),
                                    key.const_data_ptr(), gq.mutable_data_ptr(), gk.mutable_data_ptr(),
                                    sr_cuda::dtype_of(query), wide,
                                    {d.B, d.C, d.H, d.W, d.Hk, d.Wk, k, patch_size, stride}, sr_cuda::stream_of(query)),
      "cross_scale_knn backward kernels");
  return {gq, gk};
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) { m.impl("_cross_scale_knn_bwd", &knn_bwd_cuda); }
