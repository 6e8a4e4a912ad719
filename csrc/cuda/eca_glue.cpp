// Registers the eca CUDA launchers for CUDA tensors.
#include <torch/library.h>

#include <tuple>

#include "checks/eca.h"
#include "cuda/eca.cuh"
#include "cuda/glue.h"

namespace {

at::ScalarType acc_type(const at::Tensor& x) { return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

at::Tensor eca_fwd_cuda(const at::Tensor& x_in, const at::Tensor& w_in) {
  sr_cuda::check_device(x_in, "x");
  sr_check::eca_args(x_in, w_in);
  const sr_cuda::DeviceGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), w = w_in.contiguous();
  const int64_t B = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3), k = w.size(0);
  at::Tensor ws = at::empty({sr_cuda::eca_fwd_workspace(B, C, HW)}, x.options().dtype(acc_type(x)));
  at::Tensor y = at::empty_like(x);
  if (B == 0) return y;  // no image: an empty launch grid is a CUDA error
  sr_cuda::check_status(
      sr_cuda::eca_fwd(x.const_data_ptr(), w.const_data_ptr(), y.mutable_data_ptr(), ws.mutable_data_ptr(),
                       sr_cuda::dtype_of(x), B, C, HW, k, sr_cuda::stream_of(x)),
      "eca forward kernel");
  return y;
}

std::tuple<at::Tensor, at::Tensor> eca_bwd_cuda(const at::Tensor& grad_in, const at::Tensor& x_in,
                                                const at::Tensor& w_in) {
  sr_cuda::check_device(x_in, "x");
  sr_check::eca_backward_args(grad_in, x_in, w_in);
  const sr_cuda::DeviceGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), w = w_in.contiguous();
  const at::Tensor g = grad_in.to(x.scalar_type()).contiguous();
  const int64_t B = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3), k = w.size(0);
  at::Tensor ws = at::empty({sr_cuda::eca_bwd_workspace(B, C, HW, k)}, x.options().dtype(acc_type(x)));
  at::Tensor gx = at::empty_like(x), gw = at::empty_like(w);
  if (B == 0) return {gx, gw.zero_()};
  sr_cuda::check_status(sr_cuda::eca_bwd(g.const_data_ptr(), x.const_data_ptr(), w.const_data_ptr(),
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
