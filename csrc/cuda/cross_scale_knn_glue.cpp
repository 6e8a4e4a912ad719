// Registers the cross_scale_knn CUDA launchers for CUDA tensors.
#include <torch/library.h>

#include <tuple>

#include "cuda/cross_scale_knn.cuh"
#include "cuda/glue.h"

namespace {

at::ScalarType acc_type(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

std::tuple<at::Tensor, at::Tensor> knn_fwd_cuda(const at::Tensor& query_in, const at::Tensor& key_in,
                                                int64_t k, int64_t patch_size, int64_t stride,
                                                int64_t window, int64_t scale, int64_t window_offset) {
  TORCH_CHECK(sr_cuda::is_kernel_device(query_in) && sr_cuda::is_kernel_device(key_in), "query and key must be CUDA tensors");
  sr_cuda::check_same_device(key_in, "key", query_in, "query");
  TORCH_CHECK(query_in.dim() == 4 && key_in.dim() == 4, "query and key must be (B, C, H, W)");
  TORCH_CHECK(query_in.size(0) == key_in.size(0) && query_in.size(1) == key_in.size(1),
              "query and key must agree on B and C, got ", query_in.sizes(), " and ", key_in.sizes());
  TORCH_CHECK(query_in.scalar_type() == key_in.scalar_type(), "query and key dtypes differ");
  TORCH_CHECK(k > 0 && k <= sr_cuda::kKnnMaxK, "the CUDA kernel takes 1 <= k <= ", sr_cuda::kKnnMaxK);
  const sr_cuda::DeviceGuard guard(query_in.device());
  const at::Tensor query = query_in.contiguous(), key = key_in.contiguous();
  const int64_t B = query.size(0), C = query.size(1), H = query.size(2), W = query.size(3);
  const int64_t m = ((H - patch_size) / stride + 1) * ((W - patch_size) / stride + 1);
  at::Tensor dist = at::empty({B, m, k}, query.options().dtype(acc_type(query)));
  at::Tensor idx = at::empty({B, m, k}, query.options().dtype(at::kLong));
  sr_cuda::check_status(
      sr_cuda::cross_scale_knn_fwd(query.const_data_ptr(), key.const_data_ptr(), dist.mutable_data_ptr(),
                                   idx.mutable_data_ptr<int64_t>(), sr_cuda::dtype_of(query), B, C, H,
                                   W, key.size(2), key.size(3), k, patch_size, stride, window, scale,
                                   window_offset, sr_cuda::stream_of(query)),
      "cross_scale_knn forward kernel");
  return {dist, idx};
}

std::tuple<at::Tensor, at::Tensor> knn_bwd_cuda(const at::Tensor& grad_dist, const at::Tensor& idx_in,
                                                const at::Tensor& query_in, const at::Tensor& key_in,
                                                int64_t patch_size, int64_t stride) {
  TORCH_CHECK(sr_cuda::is_kernel_device(query_in), "query must be a CUDA tensor");
  sr_cuda::check_same_device(key_in, "key", query_in, "query");
  sr_cuda::check_same_device(idx_in, "idx", query_in, "query");
  sr_cuda::check_same_device(grad_dist, "grad_dist", query_in, "query");
  TORCH_CHECK(query_in.dim() == 4 && key_in.dim() == 4 && query_in.size(0) == key_in.size(0) &&
                  query_in.size(1) == key_in.size(1) && query_in.scalar_type() == key_in.scalar_type(),
              "query and key must be (B, C, H, W) of one dtype, got ", query_in.sizes(), " and ", key_in.sizes());
  TORCH_CHECK(patch_size > 0 && stride > 0 && patch_size <= query_in.size(2) && patch_size <= query_in.size(3) &&
                  patch_size <= key_in.size(2) && patch_size <= key_in.size(3),
              "patch_size must be positive and fit both maps");
  const int64_t m = ((query_in.size(2) - patch_size) / stride + 1) * ((query_in.size(3) - patch_size) / stride + 1);
  const int64_t n = ((key_in.size(2) - patch_size) / stride + 1) * ((key_in.size(3) - patch_size) / stride + 1);
  TORCH_CHECK(idx_in.scalar_type() == at::kLong && idx_in.dim() == 3 && idx_in.size(0) == query_in.size(0) &&
                  idx_in.size(1) == m && grad_dist.sizes() == idx_in.sizes(),
              "idx must be (B, m, k) int64 with m = ", m, " and grad_dist shaped like it, got ", idx_in.sizes(),
              " and ", grad_dist.sizes());
  sr_cuda::check_index_range(idx_in, n, "idx");
  const sr_cuda::DeviceGuard guard(query_in.device());
  const at::Tensor query = query_in.contiguous(), key = key_in.contiguous();
  const at::Tensor idx = idx_in.contiguous();
  const at::Tensor grad = grad_dist.to(acc_type(query)).contiguous();
  at::Tensor gq = at::zeros(query.sizes(), query.options().dtype(acc_type(query)));
  at::Tensor gk = at::zeros(key.sizes(), key.options().dtype(acc_type(query)));
  sr_cuda::check_status(
      sr_cuda::cross_scale_knn_bwd(grad.const_data_ptr(), idx.const_data_ptr<int64_t>(),
                                   query.const_data_ptr(), key.const_data_ptr(), gq.mutable_data_ptr(),
                                   gk.mutable_data_ptr(), sr_cuda::dtype_of(query), query.size(0),
                                   query.size(1), query.size(2), query.size(3), key.size(2),
                                   key.size(3), idx.size(-1), patch_size, stride,
                                   sr_cuda::stream_of(query)),
      "cross_scale_knn backward kernel");
  return {gq.to(query.scalar_type()), gk.to(key.scalar_type())};
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) {
  m.impl("_cross_scale_knn_fwd", &knn_fwd_cuda);
  m.impl("_cross_scale_knn_bwd", &knn_bwd_cuda);
}
