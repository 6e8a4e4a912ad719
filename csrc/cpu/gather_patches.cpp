// CPU kernels for gather_patches: crop windows by dispatch order; backward pastes back.
#include <torch/library.h>

#include "checks/class_windows.h"
#include "cpu/patch_windows.h"

namespace {

at::Tensor gather_patches_fwd_cpu(const at::Tensor& img_in, const at::Tensor& coords_in, const at::Tensor& order_in,
                                  int64_t patch_size) {
  const at::Tensor coords = coords_in.contiguous(), order = order_in.contiguous();
  sr_cpu::check_cpu_float(img_in, "img");
  sr_check::gather_args(img_in, coords, order, patch_size);
  const at::Tensor img = img_in.contiguous();
  const int64_t B = img.size(0), C = img.size(1), H = img.size(2), W = img.size(3);
  const int64_t N = order.size(0);
  at::Tensor out = sr_cpu::empty_large({N, C, patch_size, patch_size}, img.options());
  SR_DISPATCH_FLOATS(img.scalar_type(), "gather_patches_fwd_cpu", [&] {
    sr_cpu::crop_windows<scalar_t>(img.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                                   coords.const_data_ptr<int64_t>(), order.const_data_ptr<int64_t>(), N, C, H, W,
                                   patch_size, 1);
  });
  return out;
}

at::Tensor gather_patches_bwd_cpu(const at::Tensor& grad_in, const at::Tensor& coords_in, const at::Tensor& order_in,
                                  int64_t B, int64_t H, int64_t W) {
  const at::Tensor coords = coords_in.contiguous(), order = order_in.contiguous();
  sr_cpu::check_cpu_float(grad_in, "grad");
  sr_check::gather_backward_args(grad_in, coords, order, B, H, W);
  const at::Tensor grad = grad_in.contiguous();
  const int64_t C = grad.size(1), P = grad.size(2);
  const int64_t* c = coords.const_data_ptr<int64_t>();
  const int64_t* o = order.const_data_ptr<int64_t>();
  const auto groups = sr_cpu::group_by_batch(c, o, order.size(0), B);
  at::Tensor out = sr_cpu::empty_large({B, C, H, W}, grad.options());
  SR_DISPATCH_FLOATS(grad.scalar_type(), "gather_patches_bwd_cpu", [&] {
    sr_cpu::paste_windows<scalar_t>(grad.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), groups, c, o, B,
                                    C, H, W, P, 1, false);
  });
  return out;
}

}  // namespace

// The schemas of the kernels below (sr_ops/ops/<op>.py calls them; the CUDA glue registers
// the same names for CUDA tensors).
TORCH_LIBRARY_FRAGMENT(sr_ops, m) {
  m.def("_gather_patches_fwd(Tensor img, Tensor coords, Tensor order, int patch_size) -> Tensor");
  m.def("_gather_patches_bwd(Tensor grad, Tensor coords, Tensor order, int B, int H, int W) -> Tensor");
}

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) {
  m.impl("_gather_patches_fwd", &gather_patches_fwd_cpu);
  m.impl("_gather_patches_bwd", &gather_patches_bwd_cpu);
}
