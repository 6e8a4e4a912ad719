// Registers the merge_patches CUDA launchers for CUDA tensors (scratch buffers come from
// torch's caching allocator). The public op has already checked every window fits.
#include <torch/library.h>

#include "cuda/glue.h"
#include "cuda/merge_patches.cuh"

namespace {

void check_index_cuda(const at::Tensor& coords, const at::Tensor& order, const at::Tensor& like) {
  TORCH_CHECK(coords.device() == like.device() && order.device() == like.device() &&
                  coords.scalar_type() == at::kLong && order.scalar_type() == at::kLong && coords.dim() == 2 &&
                  coords.size(1) == 3 && order.dim() == 1 && order.size(0) == coords.size(0) &&
                  coords.is_contiguous() && order.is_contiguous(),
              "coords (N, 3) and order (N,) must be contiguous int64 on the data's CUDA device");
}

at::Tensor zeros_int(const at::Tensor& like, int64_t B, int64_t H, int64_t W) {
  return at::zeros({B, H, W}, like.options().dtype(at::kInt));
}

at::Tensor merge_patches_fwd_cuda(const at::Tensor& outputs_in, const at::Tensor& coords, const at::Tensor& order,
                                  int64_t B, int64_t H, int64_t W, int64_t scale) {
  TORCH_CHECK(sr_cuda::is_kernel_device(outputs_in) && outputs_in.dim() == 4, "outputs must be a CUDA (N, C, s*P, s*P) tensor");
  TORCH_CHECK(scale > 0 && outputs_in.size(2) % scale == 0, "outputs must be (N, C, s*P, s*P)");
  check_index_cuda(coords, order, outputs_in);
  TORCH_CHECK(outputs_in.size(0) == order.size(0), "outputs and order disagree on N");
  const sr_cuda::DeviceGuard guard(outputs_in.device());
  const at::Tensor outputs = outputs_in.contiguous();
  const int64_t N = outputs.size(0), C = outputs.size(1), Q = outputs.size(2), HH = scale * H, WW = scale * W;
  const auto acc_type = outputs.element_size() >= 4 ? at::kDouble : at::kFloat;  // see PasteAccOf
  at::Tensor acc = at::zeros({B, C, HH, WW}, outputs.options().dtype(acc_type));
  at::Tensor count = zeros_int(outputs, B, HH, WW);
  at::Tensor out = at::empty({B, C, HH, WW}, outputs.options());
  sr_cuda::check_status(
      sr_cuda::merge_patches_fwd(outputs.const_data_ptr(), out.mutable_data_ptr(), acc.mutable_data_ptr(),
                                 count.mutable_data_ptr<int32_t>(), sr_cuda::dtype_of(outputs),
                                 coords.const_data_ptr<int64_t>(), order.const_data_ptr<int64_t>(), N, B, C, HH,
                                 WW, Q, scale, sr_cuda::stream_of(outputs)),
      "merge_patches forward kernels");
  return out;
}

at::Tensor merge_patches_bwd_cuda(const at::Tensor& grad_in, const at::Tensor& coords, const at::Tensor& order,
                                  int64_t patch_size, int64_t scale) {
  TORCH_CHECK(sr_cuda::is_kernel_device(grad_in) && grad_in.dim() == 4, "grad must be a CUDA (B, C, s*H, s*W) tensor");
  TORCH_CHECK(scale > 0 && patch_size > 0, "patch_size and scale must be positive");
  check_index_cuda(coords, order, grad_in);
  const sr_cuda::DeviceGuard guard(grad_in.device());
  const at::Tensor grad = grad_in.contiguous();
  const int64_t N = order.size(0), B = grad.size(0), C = grad.size(1), HH = grad.size(2), WW = grad.size(3);
  const int64_t Q = scale * patch_size;
  at::Tensor count = zeros_int(grad, B, HH, WW);
  at::Tensor out = at::empty({N, C, Q, Q}, grad.options());
  sr_cuda::check_status(
      sr_cuda::merge_patches_bwd(grad.const_data_ptr(), out.mutable_data_ptr(), count.mutable_data_ptr<int32_t>(),
                                 sr_cuda::dtype_of(grad), coords.const_data_ptr<int64_t>(),
                                 order.const_data_ptr<int64_t>(), N, B, C, HH, WW, Q, scale,
                                 sr_cuda::stream_of(grad)),
      "merge_patches backward kernels");
  return out;
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) {
  m.impl("_merge_patches_fwd", &merge_patches_fwd_cuda);
  m.impl("_merge_patches_bwd", &merge_patches_bwd_cuda);
}
