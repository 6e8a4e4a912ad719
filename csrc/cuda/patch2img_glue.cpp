// Registers the patch2img CUDA launchers for CUDA tensors.
#include <torch/library.h>

#include "cuda/glue.h"
#include "cuda/patch2img.cuh"

namespace {

at::Tensor patch2img_fwd_cuda(const at::Tensor& patches_in, int64_t H, int64_t W,
                              int64_t stride) {
  TORCH_CHECK(sr_cuda::is_kernel_device(patches_in) && patches_in.dim() == 5, "patches must be a CUDA (B, L, C, P, P) tensor");
  TORCH_CHECK(stride > 0, "stride must be positive");
  const sr_cuda::DeviceGuard guard(patches_in.device());
  const at::Tensor patches = patches_in.contiguous();
  const int64_t B = patches.size(0), C = patches.size(2), P = patches.size(3);
  TORCH_CHECK(P <= H && P <= W && patches.size(4) == P, "bad patch size for out_size");
  TORCH_CHECK(((H - P) / stride + 1) * ((W - P) / stride + 1) == patches.size(1),
              "patches.size(1) does not match the patch grid");
  at::Tensor out = at::empty({B, C, H, W}, patches.options());
  sr_cuda::check_status(
      sr_cuda::patch2img_fwd(patches.const_data_ptr(), out.mutable_data_ptr(),
                             sr_cuda::dtype_of(patches), B, C, H, W, P, stride,
                             sr_cuda::stream_of(patches)),
      "patch2img forward kernel");
  return out;
}

at::Tensor patch2img_bwd_cuda(const at::Tensor& grad_in, int64_t patch_size,
                              int64_t stride) {
  TORCH_CHECK(sr_cuda::is_kernel_device(grad_in) && grad_in.dim() == 4, "grad_out must be a CUDA (B, C, H, W) tensor");
  TORCH_CHECK(stride > 0 && patch_size > 0, "patch_size and stride must be positive");
  const sr_cuda::DeviceGuard guard(grad_in.device());
  const at::Tensor grad = grad_in.contiguous();
  const int64_t B = grad.size(0), C = grad.size(1), H = grad.size(2), W = grad.size(3);
  TORCH_CHECK(patch_size <= H && patch_size <= W, "patch_size larger than grad_out");
  const int64_t L = ((H - patch_size) / stride + 1) * ((W - patch_size) / stride + 1);
  at::Tensor out = at::empty({B, L, C, patch_size, patch_size}, grad.options());
  sr_cuda::check_status(
      sr_cuda::patch2img_bwd(grad.const_data_ptr(), out.mutable_data_ptr(),
                             sr_cuda::dtype_of(grad), B, C, H, W, patch_size, stride,
                             sr_cuda::stream_of(grad)),
      "patch2img backward kernel");
  return out;
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) {
  m.impl("_patch2img_fwd", &patch2img_fwd_cuda);
  m.impl("_patch2img_bwd", &patch2img_bwd_cuda);
}
