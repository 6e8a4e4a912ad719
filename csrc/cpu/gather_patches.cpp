// CPU kernels for gather_patches: crop windows by dispatch order; backward pastes back.
#include <torch/library.h>

#include "cpu/patch_windows.h"

namespace {

at::Tensor gather_patches_fwd_cpu(const at::Tensor& img_in, const at::Tensor& coords,
                                  const at::Tensor& order, int64_t patch_size) {
  sr_cpu::check_cpu_float(img_in, "img");
  TORCH_CHECK(img_in.dim() == 4, "img must be (B, C, H, W)");
  const at::Tensor img = img_in.contiguous();
  const int64_t B = img.size(0), C = img.size(1), H = img.size(2), W = img.size(3);
  sr_cpu::check_windows(coords, order, B, H, W, patch_size, 1);
  const int64_t N = order.size(0);
  at::Tensor out = sr_cpu::empty_large({N, C, patch_size, patch_size}, img.options());
  SR_DISPATCH_FLOATS(img.scalar_type(), "gather_patches_fwd_cpu", [&] {
    sr_cpu::crop_windows<scalar_t>(img.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                                   coords.const_data_ptr<int64_t>(), order.const_data_ptr<int64_t>(), N, C,
                                   H, W, patch_size, 1);
  });
  return out;
}

at::Tensor gather_patches_bwd_cpu(const at::Tensor& grad_in, const at::Tensor& coords,
                                  const at::Tensor& order, int64_t B, int64_t H, int64_t W) {
  sr_cpu::check_cpu_float(grad_in, "grad");
  TORCH_CHECK(grad_in.dim() == 4 && grad_in.size(2) == grad_in.size(3), "grad must be (N, C, P, P)");
  const at::Tensor grad = grad_in.contiguous();
  const int64_t C = grad.size(1), P = grad.size(2);
  sr_cpu::check_windows(coords, order, B, H, W, P, 1);
  TORCH_CHECK(grad.size(0) == order.size(0), "grad and order disagree on N");
  const int64_t* c = coords.const_data_ptr<int64_t>();
  const int64_t* o = order.const_data_ptr<int64_t>();
  const auto groups = sr_cpu::group_by_batch(c, o, order.size(0), B);
  at::Tensor out = sr_cpu::empty_large({B, C, H, W}, grad.options());
  SR_DISPATCH_FLOATS(grad.scalar_type(), "gather_patches_bwd_cpu", [&] {
    sr_cpu::paste_windows<scalar_t>(grad.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), groups,
                                    c, o, B, C, H, W, P, 1, false);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) {
  m.impl("_gather_patches_fwd", &gather_patches_fwd_cpu);
  m.impl("_gather_patches_bwd", &gather_patches_bwd_cpu);
}
