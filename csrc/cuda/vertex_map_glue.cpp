// Registers the vertex_map CUDA launcher for CUDA tensors.
#include <torch/library.h>

#include <tuple>

#include "cuda/glue.h"
#include "cuda/vertex_map.cuh"

namespace {

std::tuple<at::Tensor, at::Tensor> vertex_map_fwd_cuda(const at::Tensor& idx_in, int64_t Hk,
                                                       int64_t Wk, int64_t scale,
                                                       int64_t patch_size, int64_t stride) {
  TORCH_CHECK(sr_cuda::is_kernel_device(idx_in) && idx_in.scalar_type() == at::kLong,
              "idx must be a CUDA int64 tensor");
  TORCH_CHECK(scale > 0 && patch_size > 0 && stride > 0,
              "scale, patch_size and stride must be positive");
  TORCH_CHECK(patch_size <= Hk && patch_size <= Wk, "patch_size larger than key_hw");
  sr_cuda::check_index_range(idx_in, ((Hk - patch_size) / stride + 1) * ((Wk - patch_size) / stride + 1),
                             "idx (key patch numbers)");
  const sr_cuda::DeviceGuard guard(idx_in.device());
  const at::Tensor idx = idx_in.contiguous();
  at::Tensor rows = at::empty_like(idx), cols = at::empty_like(idx);
  sr_cuda::check_status(
      sr_cuda::vertex_map_fwd(idx.const_data_ptr<int64_t>(), rows.mutable_data_ptr<int64_t>(),
                              cols.mutable_data_ptr<int64_t>(), idx.numel(), Hk, Wk, scale,
                              patch_size, stride, sr_cuda::stream_of(idx)),
      "vertex_map kernel");
  return {rows, cols};
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) { m.impl("_vertex_map_fwd", &vertex_map_fwd_cuda); }
