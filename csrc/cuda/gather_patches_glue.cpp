// Registers the gather_patches CUDA launchers for CUDA tensors.
#include <torch/library.h>

#include "checks/class_windows.h"
#include "cuda/glue.h"
#include "cuda/gather_patches.cuh"
#include "cuda/patch_tiles_glue.h"

namespace {

at::Tensor gather_patches_fwd_cuda(const at::Tensor& img_in, const at::Tensor& coords_in, const at::Tensor& order_in,
                                   int64_t patch_size) {
  const at::Tensor coords = coords_in.contiguous(), order = order_in.contiguous();
  sr_cuda::check_device(img_in, "img");
  sr_check::gather_args(img_in, coords, order, patch_size);
  const sr_cuda::DeviceGuard guard(img_in.device());
  const at::Tensor img = img_in.contiguous();
  const int64_t N = order.size(0), C = img.size(1);
  at::Tensor out = at::empty({N, C, patch_size, patch_size}, img.options());
  sr_cuda::check_status(
      sr_cuda::crop_windows(img.const_data_ptr(), out.mutable_data_ptr(), sr_cuda::dtype_of(img),
                            coords.const_data_ptr<int64_t>(), order.const_data_ptr<int64_t>(), nullptr, N, img.size(0),
                            C, img.size(2), img.size(3), patch_size, 1, sr_cuda::stream_of(img)),
      "gather_patches forward kernel");
  return out;
}

at::Tensor gather_patches_bwd_cuda(const at::Tensor& grad_in, const at::Tensor& coords_in, const at::Tensor& order_in,
                                   int64_t B, int64_t H, int64_t W) {
  const at::Tensor coords = coords_in.contiguous(), order = order_in.contiguous();
  sr_cuda::check_device(grad_in, "grad");
  sr_check::gather_backward_args(grad_in, coords, order, B, H, W);
  const sr_cuda::DeviceGuard guard(grad_in.device());
  const at::Tensor grad = grad_in.contiguous();
  const int64_t N = grad.size(0), C = grad.size(1), P = grad.size(2);
  at::Tensor out = at::empty({B, C, H, W}, grad.options());
  const sr_glue::PasteTiles tiles = sr_glue::bin_windows(coords, order, B, H, W, P, 1);
  sr_cuda::check_status(sr_cuda::paste_windows(grad.const_data_ptr(), out.mutable_data_ptr(), sr_cuda::dtype_of(grad),
                                               tiles.index(), N, B, C, H, W, P, false, sr_cuda::stream_of(grad)),
                        "gather_patches backward kernel");
  return out;
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) {
  m.impl("_gather_patches_fwd", &gather_patches_fwd_cuda);
  m.impl("_gather_patches_bwd", &gather_patches_bwd_cuda);
}
