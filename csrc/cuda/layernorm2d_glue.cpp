// Registers the layernorm2d CUDA launchers for CUDA tensors.
#include <torch/library.h>

#include <tuple>

#include "checks/layernorm2d.h"
#include "cuda/glue.h"
#include "cuda/layernorm2d.cuh"

namespace {

void check_args(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps) {
  sr_cuda::check_device(x, "x");
  sr_check::layernorm2d_args(x, w, b, eps);
}

at::Tensor layernorm2d_fwd_cuda(const at::Tensor& x_in, const at::Tensor& w_in, const at::Tensor& b_in, double eps) {
  check_args(x_in, w_in, b_in, eps);
  const sr_cuda::DeviceGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), w = w_in.contiguous(), b = b_in.contiguous();
  at::Tensor y = at::empty_like(x);
  sr_cuda::check_status(sr_cuda::layernorm2d_fwd(x.const_data_ptr(), w.const_data_ptr(), b.const_data_ptr(),
                                                 y.mutable_data_ptr(), sr_cuda::dtype_of(x), x.size(0), x.size(1),
                                                 x.size(2) * x.size(3), eps, sr_cuda::stream_of(x)),
                        "layernorm2d forward kernel");
  return y;
}

at::Tensor gelu_layernorm2d_fwd_cuda(const at::Tensor& x_in, const at::Tensor& w_in, const at::Tensor& b_in, double eps,
                                     c10::string_view approximate) {
  check_args(x_in, w_in, b_in, eps);
  sr_check::gelu_approximate(approximate);
  const sr_cuda::DeviceGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), w = w_in.contiguous(), b = b_in.contiguous();
  at::Tensor y = at::empty_like(x);
  sr_cuda::check_status(
      sr_cuda::gelu_layernorm2d_fwd(x.const_data_ptr(), w.const_data_ptr(), b.const_data_ptr(), y.mutable_data_ptr(),
                                    sr_cuda::dtype_of(x), x.size(0), x.size(1), x.size(2) * x.size(3), eps,
                                    approximate == "tanh", sr_cuda::stream_of(x)),
      "gelu_layernorm2d forward kernel");
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> layernorm2d_bwd_cuda(const at::Tensor& grad_in, const at::Tensor& x_in,
                                                                    const at::Tensor& w_in, const at::Tensor& b_in,
                                                                    double eps) {
  sr_cuda::check_device(x_in, "x");
  sr_check::layernorm2d_backward_args(grad_in, x_in, w_in, b_in, eps);
  const sr_cuda::DeviceGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), w = w_in.contiguous();
  const at::Tensor g = grad_in.to(x.scalar_type()).contiguous();
  const int64_t B = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor stats = at::empty({sr_cuda::layernorm2d_bwd_workspace(B, C, HW)}, x.options().dtype(acc));
  at::Tensor gx = at::empty_like(x), gw = at::empty_like(w), gb = at::empty_like(w);
  sr_cuda::check_status(
      sr_cuda::layernorm2d_bwd(g.const_data_ptr(), x.const_data_ptr(), w.const_data_ptr(), gx.mutable_data_ptr(),
                               gw.mutable_data_ptr(), gb.mutable_data_ptr(), stats.mutable_data_ptr(),
                               sr_cuda::dtype_of(x), B, C, HW, eps, sr_cuda::stream_of(x)),
      "layernorm2d backward kernel");
  return {gx, gw, gb};
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) {
  m.impl("_layernorm2d_fwd", &layernorm2d_fwd_cuda);
  m.impl("_layernorm2d_bwd", &layernorm2d_bwd_cuda);
  m.impl("_gelu_layernorm2d_fwd", &gelu_layernorm2d_fwd_cuda);
}
