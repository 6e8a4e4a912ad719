// Registers the merge_patches CUDA launchers for CUDA tensors (the tile index and scratch
// buffers come from torch's caching allocator).
#include <torch/library.h>

#include "checks/class_windows.h"
#include "cuda/glue.h"
#include "cuda/merge_patches.cuh"
#include "cuda/patch_tiles_glue.h"

namespace {

at::Tensor merge_patches_fwd_cuda(const at::Tensor& outputs_in, const at::Tensor& coords_in, const at::Tensor& order_in,
                                  int64_t B, int64_t H, int64_t W, int64_t scale) {
  const at::Tensor coords = coords_in.contiguous(), order = order_in.contiguous();
  sr_cuda::check_device(outputs_in, "outputs");
  sr_check::merge_args(outputs_in, coords, order, B, H, W, scale);
  const sr_cuda::DeviceGuard guard(outputs_in.device());
  const at::Tensor outputs = outputs_in.contiguous();
  const int64_t N = outputs.size(0), C = outputs.size(1), Q = outputs.size(2), HH = scale * H, WW = scale * W;
  at::Tensor out = at::empty({B, C, HH, WW}, outputs.options());
  const sr_glue::PasteTiles tiles = sr_glue::bin_windows(coords, order, B, HH, WW, Q, scale);
  sr_cuda::check_status(
      sr_cuda::merge_patches_fwd(outputs.const_data_ptr(), out.mutable_data_ptr(), sr_cuda::dtype_of(outputs),
                                 tiles.index(), N, B, C, HH, WW, Q, sr_cuda::stream_of(outputs)),
      "merge_patches forward kernel");
  return out;
}

at::Tensor merge_patches_bwd_cuda(const at::Tensor& grad_in, const at::Tensor& coords_in, const at::Tensor& order_in,
                                  int64_t patch_size, int64_t scale) {
  const at::Tensor coords = coords_in.contiguous(), order = order_in.contiguous();
  sr_cuda::check_device(grad_in, "grad");
  sr_check::merge_backward_args(grad_in, coords, order, patch_size, scale);
  const sr_cuda::DeviceGuard guard(grad_in.device());
  const at::Tensor grad = grad_in.contiguous();
  const int64_t N = order.size(0), B = grad.size(0), C = grad.size(1), HH = grad.size(2), WW = grad.size(3);
  const int64_t Q = scale * patch_size;
  at::Tensor count = at::empty({B, HH, WW}, grad.options().dtype(at::kInt));
  at::Tensor out = at::empty({N, C, Q, Q}, grad.options());
  const sr_glue::PasteTiles tiles = sr_glue::bin_windows(coords, order, B, HH, WW, Q, scale);
  sr_cuda::check_status(sr_cuda::merge_patches_bwd(grad.const_data_ptr(), out.mutable_data_ptr(),
                                                   count.mutable_data_ptr<int32_t>(), sr_cuda::dtype_of(grad),
                                                   coords.const_data_ptr<int64_t>(), order.const_data_ptr<int64_t>(),
                                                   tiles.index(), N, B, C, HH, WW, Q, scale, sr_cuda::stream_of(grad)),
                        "merge_patches backward kernels");
  return out;
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) {
  m.impl("_merge_patches_fwd", &merge_patches_fwd_cuda);
  m.impl("_merge_patches_bwd", &merge_patches_bwd_cuda);
}
