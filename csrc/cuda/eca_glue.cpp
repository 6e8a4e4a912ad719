// Registers the eca CUDA launchers for CUDA tensors.
#include <torch/library.h>

#include <tuple>

#include "cuda/eca.cuh"
#include "cuda/glue.h"

namespace {

void check_args(const at::Tensor& x, const at::Tensor& w) {
  TORCH_CHECK(sr_cuda::is_kernel_device(x) && w.device() == x.device(), "x and weight must be CUDA tensors on one device");
  TORCH_CHECK(x.scalar_type() == w.scalar_type(), "x and weight dtypes differ");
  TORCH_CHECK(x.dim() == 4, "x must be (B, C, H, W), got ", x.sizes());
  TORCH_CHECK(w.dim() == 1 && w.size(0) % 2 == 1, "weight must be (k,) with k odd, got ", w.sizes());
  TORCH_CHECK(x.size(2) * x.size(3) > 0, "x must have at least one pixel, got ", x.sizes());
}

at::ScalarType acc_type(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

at::Tensor eca_fwd_cuda(const at::Tensor& x_in, const at::Tensor& w_in) {
  check_args(x_in, w_in);
  const sr_cuda::DeviceGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), w = w_in.contiguous();
  const int64_t B = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3), k = w.size(0);
  at::Tensor ws = at::empty({sr_cuda::eca_fwd_workspace(B, C)}, x.options().dtype(acc_type(x)));
  at::Tensor y = at::empty_like(x);
  sr_cuda::check_status(
      sr_cuda::eca_fwd(x.const_data_ptr(), w.const_data_ptr(), y.mutable_data_ptr(),
                       ws.mutable_data_ptr(), sr_cuda::dtype_of(x), B, C, HW, k,
                       sr_cuda::stream_of(x)),
      "eca forward kernel");
  return y;
}

std::tuple<at::Tensor, at::Tensor> eca_bwd_cuda(const at::Tensor& grad_in, const at::Tensor& x_in,
                                                const at::Tensor& w_in) {
  check_args(x_in, w_in);
  TORCH_CHECK(grad_in.sizes() == x_in.sizes() && grad_in.device() == x_in.device(),
              "grad_out must be shaped like x, on its device");
  const sr_cuda::DeviceGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), w = w_in.contiguous();
  const at::Tensor g = grad_in.to(x.scalar_type()).contiguous();
  const int64_t B = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3), k = w.size(0);
  at::Tensor ws = at::empty({sr_cuda::eca_bwd_workspace(B, C, k)}, x.options().dtype(acc_type(x)));
  at::Tensor gx = at::empty_like(x), gw = at::empty_like(w);
  sr_cuda::check_status(
      sr_cuda::eca_bwd(g.const_data_ptr(), x.const_data_ptr(), w.const_data_ptr(),
                       gx.mutable_data_ptr(), gw.mutable_data_ptr(), ws.mutable_data_ptr(),
                       sr_cuda::dtype_of(x), B, C, HW, k, sr_cuda::stream_of(x)),
      "eca backward kernel");
  return {gx, gw};
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) {
  m.impl("_eca_fwd", &eca_fwd_cuda);
  m.impl("_eca_bwd", &eca_bwd_cuda);
}
