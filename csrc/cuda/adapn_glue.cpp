// Registers the adapn CUDA launchers for CUDA tensors.
#include <torch/library.h>

#include <tuple>

#include "checks/adapn.h"
#include "cuda/adapn.cuh"
#include "cuda/glue.h"

namespace {

at::Tensor adapn_fwd_cuda(const at::Tensor& z_in, const at::Tensor& q_in, double eps) {
  sr_cuda::check_device(z_in, "neighbors");
  const auto d = sr_check::adapn_dims(z_in, q_in, eps);
  const sr_cuda::DeviceGuard guard(z_in.device());
  const at::Tensor z = z_in.contiguous(), q = q_in.contiguous();
  at::Tensor out = at::empty_like(z);
  sr_cuda::check_status(sr_cuda::adapn_fwd(z.const_data_ptr(), q.const_data_ptr(), out.mutable_data_ptr(),
                                           sr_cuda::dtype_of(z), d.N, d.k, d.C, d.PP, d.pp, eps, sr_cuda::stream_of(z)),
                        "adapn forward kernel");
  return out;
}

std::tuple<at::Tensor, at::Tensor> adapn_bwd_cuda(const at::Tensor& grad_in, const at::Tensor& z_in,
                                                  const at::Tensor& q_in, double eps) {
  sr_cuda::check_device(z_in, "neighbors");
  const auto d = sr_check::adapn_backward_dims(grad_in, z_in, q_in, eps);
  const sr_cuda::DeviceGuard guard(z_in.device());
  const at::Tensor z = z_in.contiguous(), q = q_in.contiguous();
  const at::Tensor g = grad_in.to(z.scalar_type()).contiguous();
  at::Tensor gz = at::empty_like(z), gq = at::empty_like(q);
  sr_cuda::check_status(sr_cuda::adapn_bwd(g.const_data_ptr(), z.const_data_ptr(), q.const_data_ptr(),
                                           gz.mutable_data_ptr(), gq.mutable_data_ptr(), sr_cuda::dtype_of(z), d.N, d.k,
                                           d.C, d.PP, d.pp, eps, sr_cuda::stream_of(z)),
                        "adapn backward kernel");
  return {gz, gq};
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) {
  m.impl("_adapn_fwd", &adapn_fwd_cuda);
  m.impl("_adapn_bwd", &adapn_bwd_cuda);
}
