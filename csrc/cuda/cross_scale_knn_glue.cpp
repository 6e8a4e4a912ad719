// Registers the cross_scale_knn CUDA launchers for CUDA tensors.
#include <torch/library.h>

#include <tuple>

#include "checks/cross_scale_knn.h"
#include "cuda/cross_scale_knn.cuh"
#include "cuda/glue.h"

namespace {

at::ScalarType acc_type(const at::Tensor& t) { return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

std::tuple<at::Tensor, at::Tensor> knn_fwd_cuda(const at::Tensor& query_in, const at::Tensor& key_in, int64_t k,
                                                int64_t patch_size, int64_t stride, int64_t window, int64_t scale,
                                                int64_t window_offset) {
  sr_cuda::check_device(query_in, "query");
  const auto d = sr_check::knn_dims(query_in, key_in, k, patch_size, stride, window, scale, window_offset);
  TORCH_CHECK_VALUE(k <= sr_cuda::kKnnMaxK, "k must be at most ", sr_cuda::kKnnMaxK,
                    " on the CUDA kernel (each thread's top-k list), got k=", k);
  const sr_cuda::DeviceGuard guard(query_in.device());
  const at::Tensor query = query_in.contiguous(), key = key_in.contiguous();
  const int64_t B = d.B, C = d.C, H = d.H, W = d.W, m = d.m1 * d.m2;
  at::Tensor dist = at::empty({B, m, k}, query.options().dtype(acc_type(query)));
  at::Tensor idx = at::empty({B, m, k}, query.options().dtype(at::kLong));
  sr_cuda::check_status(
      sr_cuda::cross_scale_knn_fwd(query.const_data_ptr(), key.const_data_ptr(), dist.mutable_data_ptr(),
                                   idx.mutable_data_ptr<int64_t>(), sr_cuda::dtype_of(query), B, C, H, W, key.size(2),
                                   key.size(3), k, patch_size, stride, window, scale, window_offset,
                                   sr_cuda::stream_of(query)),
      "cross_scale_knn forward kernel");
  return {dist, idx};
}

std::tuple<at::Tensor, at::Tensor> knn_bwd_cuda(const at::Tensor& grad_dist, const at::Tensor& idx_in,
                                                const at::Tensor& query_in, const at::Tensor& key_in,
                                                int64_t patch_size, int64_t stride) {
  sr_cuda::check_device(query_in, "query");
  sr_check::knn_backward_dims(grad_dist, idx_in, query_in, key_in, patch_size, stride);
  const sr_cuda::DeviceGuard guard(query_in.device());
  const at::Tensor query = query_in.contiguous(), key = key_in.contiguous();
  const at::Tensor idx = idx_in.contiguous();
  const at::Tensor grad = grad_dist.to(acc_type(query)).contiguous();
  at::Tensor gq = at::zeros(query.sizes(), query.options().dtype(acc_type(query)));
  at::Tensor gk = at::zeros(key.sizes(), key.options().dtype(acc_type(query)));
  sr_cuda::check_status(sr_cuda::cross_scale_knn_bwd(
                            grad.const_data_ptr(), idx.const_data_ptr<int64_t>(), query.const_data_ptr(),
                            key.const_data_ptr(), gq.mutable_data_ptr(), gk.mutable_data_ptr(),
                            sr_cuda::dtype_of(query), query.size(0), query.size(1), query.size(2), query.size(3),
                            key.size(2), key.size(3), idx.size(-1), patch_size, stride, sr_cuda::stream_of(query)),
                        "cross_scale_knn backward kernel");
  return {gq.to(query.scalar_type()), gk.to(key.scalar_type())};
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) {
  m.impl("_cross_scale_knn_fwd", &knn_fwd_cuda);
  m.impl("_cross_scale_knn_bwd", &knn_bwd_cuda);
}
