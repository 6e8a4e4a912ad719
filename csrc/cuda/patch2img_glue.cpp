// Registers the patch2img CUDA launchers for CUDA tensors.
#include <torch/library.h>

#include "checks/patch_grids.h"
#include "cuda/glue.h"
#include "cuda/patch2img.cuh"

namespace {

at::Tensor patch2img_fwd_cuda(const at::Tensor& patches_in, int64_t H, int64_t W, int64_t stride) {
  sr_cuda::check_device(patches_in, "patches");
  const auto d = sr_check::patch2img_dims(patches_in, H, W, stride);
  const sr_cuda::DeviceGuard guard(patches_in.device());
  const at::Tensor patches = patches_in.contiguous();
  const int64_t B = d.B, C = d.C, P = d.P;
  at::Tensor out = at::empty({B, C, H, W}, patches.options());
  sr_cuda::check_status(
      sr_cuda::patch2img_fwd(patches.const_data_ptr(), out.mutable_data_ptr(), sr_cuda::dtype_of(patches), B, C, H, W,
                             P, stride, sr_cuda::stream_of(patches)),
      "patch2img forward kernel");
  return out;
}

at::Tensor patch2img_bwd_cuda(const at::Tensor& grad_in, int64_t patch_size, int64_t stride) {
  sr_cuda::check_device(grad_in, "grad_out");
  const auto d = sr_check::patch2img_backward_dims(grad_in, patch_size, stride);
  const sr_cuda::DeviceGuard guard(grad_in.device());
  const at::Tensor grad = grad_in.contiguous();
  const int64_t B = d.B, C = d.C, H = d.H, W = d.W, L = d.L;
  at::Tensor out = at::empty({B, L, C, patch_size, patch_size}, grad.options());
  sr_cuda::check_status(sr_cuda::patch2img_bwd(grad.const_data_ptr(), out.mutable_data_ptr(), sr_cuda::dtype_of(grad),
                                               B, C, H, W, patch_size, stride, sr_cuda::stream_of(grad)),
                        "patch2img backward kernel");
  return out;
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) {
  m.impl("_patch2img_fwd", &patch2img_fwd_cuda);
  m.impl("_patch2img_bwd", &patch2img_bwd_cuda);
}
