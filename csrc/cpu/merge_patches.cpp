// CPU kernels for merge_patches: paste SR outputs into the HR image, averaging overlaps;
// backward crops the gradient and divides by the same coverage.
#include <torch/library.h>

#include "cpu/patch_windows.h"

namespace {

at::Tensor merge_patches_fwd_cpu(const at::Tensor& outputs_in, const at::Tensor& coords,
                                 const at::Tensor& order, int64_t B, int64_t H, int64_t W, int64_t scale) {
  sr_cpu::check_cpu_float(outputs_in, "outputs");
  TORCH_CHECK(scale > 0, "scale must be positive");
  TORCH_CHECK(outputs_in.dim() == 4 && outputs_in.size(2) == outputs_in.size(3) &&
                  outputs_in.size(2) % scale == 0,
              "outputs must be (N, C, s*P, s*P)");
  const at::Tensor outputs = outputs_in.contiguous();
  const int64_t C = outputs.size(1), Q = outputs.size(2), HH = scale * H, WW = scale * W;
  sr_cpu::check_windows(coords, order, B, HH, WW, Q, scale);
  TORCH_CHECK(outputs.size(0) == order.size(0), "outputs and order disagree on N");
  const int64_t* c = coords.const_data_ptr<int64_t>();
  const int64_t* o = order.const_data_ptr<int64_t>();
  const auto groups = sr_cpu::group_by_batch(c, o, order.size(0), B);
  at::Tensor out = sr_cpu::empty_large({B, C, HH, WW}, outputs.options());
  SR_DISPATCH_FLOATS(outputs.scalar_type(), "merge_patches_fwd_cpu", [&] {
    sr_cpu::paste_windows<scalar_t>(outputs.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                                    groups, c, o, B, C, HH, WW, Q, scale, true);
  });
  return out;
}

at::Tensor merge_patches_bwd_cpu(const at::Tensor& grad_in, const at::Tensor& coords,
                                 const at::Tensor& order, int64_t patch_size, int64_t scale) {
  sr_cpu::check_cpu_float(grad_in, "grad");
  TORCH_CHECK(grad_in.dim() == 4, "grad must be (B, C, s*H, s*W)");
  TORCH_CHECK(scale > 0 && patch_size > 0, "patch_size and scale must be positive");
  const at::Tensor grad = grad_in.contiguous();
  const int64_t B = grad.size(0), C = grad.size(1), HH = grad.size(2), WW = grad.size(3);
  const int64_t Q = scale * patch_size, N = order.size(0);
  sr_cpu::check_windows(coords, order, B, HH, WW, Q, scale);
  const int64_t* c = coords.const_data_ptr<int64_t>();
  const int64_t* o = order.const_data_ptr<int64_t>();
  const auto groups = sr_cpu::group_by_batch(c, o, N, B);
  at::Tensor out = sr_cpu::empty_large({N, C, Q, Q}, grad.options());
  SR_DISPATCH_FLOATS(grad.scalar_type(), "merge_patches_bwd_cpu", [&] {
    sr_cpu::crop_mean_grad<scalar_t>(grad.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), groups,
                                     c, o, B, C, HH, WW, Q, scale);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) {
  m.impl("_merge_patches_fwd", &merge_patches_fwd_cpu);
  m.impl("_merge_patches_bwd", &merge_patches_bwd_cpu);
}
