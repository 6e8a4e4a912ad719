// Registers the extract_patches CUDA launcher for CUDA tensors.
#include <torch/library.h>

#include "checks/patch_grids.h"
#include "cuda/glue.h"
#include "cuda/extract_patches.cuh"
#include "kernels/extract_patches.h"

namespace {

std::tuple<at::Tensor, at::Tensor> extract_patches_fwd_cuda(const at::Tensor& img_in, int64_t patch_size,
                                                            int64_t stride) {
  sr_cuda::check_device(img_in, "img");
  sr_check::extract_patches_args(img_in, patch_size, stride);
  const sr_cuda::DeviceGuard guard(img_in.device());
  const at::Tensor img = img_in.contiguous();
  const int64_t B = img.size(0), C = img.size(1), H = img.size(2), W = img.size(3);
  const auto d = sr::extract_dims(B, H, W, patch_size, stride);
  at::Tensor coords = at::empty({d.N, 3}, img.options().dtype(at::kLong));
  at::Tensor order = at::empty({d.N}, img.options().dtype(at::kLong));
  at::Tensor out = at::empty({d.N, C, patch_size, patch_size}, img.options());
  sr_cuda::check_status(
      sr_cuda::extract_patches_fwd(img.const_data_ptr(), out.mutable_data_ptr(), coords.mutable_data_ptr<int64_t>(),
                                   order.mutable_data_ptr<int64_t>(), sr_cuda::dtype_of(img), B, C, H, W, patch_size,
                                   stride, sr_cuda::stream_of(img)),
      "extract_patches kernels");
  return {out, coords};
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) { m.impl("_extract_patches_fwd", &extract_patches_fwd_cuda); }
