// Registers the cross_scale_knn CUDA forward for CUDA tensors (the backward: cross_scale_knn_backward_glue.cpp).
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

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) { m.impl("_cross_scale_knn_fwd", &knn_fwd_cuda); }
