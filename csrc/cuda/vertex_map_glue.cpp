// Registers the vertex_map CUDA launcher for CUDA tensors.
#include <torch/library.h>

#include <tuple>

#include "checks/patch_grids.h"
#include "cuda/glue.h"
#include "cuda/vertex_map.cuh"

namespace {

std::tuple<at::Tensor, at::Tensor> vertex_map_fwd_cuda(const at::Tensor& idx_in, int64_t Hk, int64_t Wk, int64_t scale,
                                                       int64_t patch_size, int64_t stride) {
  sr_cuda::check_device(idx_in, "idx");
  const int64_t n = sr_check::vertex_map_args(idx_in, Hk, Wk, scale, patch_size, stride);
  sr_check::index_range(idx_in, n, "idx", "the key patches");
  const sr_cuda::DeviceGuard guard(idx_in.device());
  const at::Tensor idx = idx_in.contiguous();
  at::Tensor rows = at::empty_like(idx), cols = at::empty_like(idx);
  sr_cuda::check_status(sr_cuda::vertex_map_fwd(idx.const_data_ptr<int64_t>(), rows.mutable_data_ptr<int64_t>(),
                                                cols.mutable_data_ptr<int64_t>(), idx.numel(), Hk, Wk, scale,
                                                patch_size, stride, sr_cuda::stream_of(idx)),
                        "vertex_map kernel");
  return {rows, cols};
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) { m.impl("_vertex_map_fwd", &vertex_map_fwd_cuda); }
