// CPU kernels for merge_patches: paste SR outputs into the HR image, averaging overlaps;
// backward crops the gradient and divides by the same coverage.
#include <torch/library.h>

#include "checks/class_windows.h"
#include "cpu/patch_windows.h"

namespace {

at::Tensor merge_patches_fwd_cpu(const at::Tensor& outputs_in, const at::Tensor& coords_in, const at::Tensor& order_in,
                                 int64_t B, int64_t H, int64_t W, int64_t scale) {
  const at::Tensor coords = coords_in.contiguous(), order = order_in.contiguous();
  sr_cpu::check_cpu_float(outputs_in, "outputs");
  sr_check::merge_args(outputs_in, coords, order, B, H, W, scale);
  const at::Tensor outputs = outputs_in.contiguous();
  const int64_t C = outputs.size(1), Q = outputs.size(2), HH = scale * H, WW = scale * W;
  const int64_t* c = coords.const_data_ptr<int64_t>();
  const int64_t* o = order.const_data_ptr<int64_t>();
  const auto groups = sr_cpu::group_by_batch(c, o, order.size(0), B);
  at::Tensor out = sr_cpu::empty_large({B, C, HH, WW}, outputs.options());
  SR_DISPATCH_FLOATS(outputs.scalar_type(), "merge_patches_fwd_cpu", [&] {
    sr_cpu::paste_windows<scalar_t>(outputs.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), groups, c, o,
                                    B, C, HH, WW, Q, scale, true);
  });
  return out;
}

at::Tensor merge_patches_bwd_cpu(const at::Tensor& grad_in, const at::Tensor& coords_in, const at::Tensor& order_in,
                                 int64_t patch_size, int64_t scale) {
  const at::Tensor coords = coords_in.contiguous(), order = order_in.contiguous();
  sr_cpu::check_cpu_float(grad_in, "grad");
  sr_check::merge_backward_args(grad_in, coords, order, patch_size, scale);
  const at::Tensor grad = grad_in.contiguous();
  const int64_t B = grad.size(0), C = grad.size(1), HH = grad.size(2), WW = grad.size(3);
  const int64_t Q = scale * patch_size, N = order.size(0);
  const int64_t* c = coords.const_data_ptr<int64_t>();
  const int64_t* o = order.const_data_ptr<int64_t>();
  const auto groups = sr_cpu::group_by_batch(c, o, N, B);
  at::Tensor out = sr_cpu::empty_large({N, C, Q, Q}, grad.options());
  SR_DISPATCH_FLOATS(grad.scalar_type(), "merge_patches_bwd_cpu", [&] {
    sr_cpu::crop_mean_grad<scalar_t>(grad.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), groups, c, o, B,
                                     C, HH, WW, Q, scale);
  });
  return out;
}

}  // namespace

// The schemas of the kernels below (sr_ops/ops/<op>.py calls them; the CUDA glue registers
// the same names for CUDA tensors).
TORCH_LIBRARY_FRAGMENT(sr_ops, m) {
  m.def(
      "_merge_patches_fwd(Tensor outputs, Tensor coords, Tensor order, int B, int H, int W, "
      "int scale) -> Tensor");
  m.def("_merge_patches_bwd(Tensor grad, Tensor coords, Tensor order, int patch_size, int scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) {
  m.impl("_merge_patches_fwd", &merge_patches_fwd_cpu);
  m.impl("_merge_patches_bwd", &merge_patches_bwd_cpu);
}
