// Registers the adapn CUDA launchers for CUDA tensors.
#include <torch/library.h>

#include <tuple>

#include "cuda/adapn.cuh"
#include "cuda/glue.h"

namespace {

struct Dims {
  int64_t N, k, C, PP, pp;
};

// neighbors (..., k, C, P1, P2) and query (..., C, p1, p2) of one dtype, on one device.
Dims dims_from(const at::Tensor& z, const at::Tensor& q, double eps) {
  TORCH_CHECK(sr_cuda::is_kernel_device(z) && sr_cuda::is_kernel_device(q) && z.device() == q.device(),
              "neighbors and query must be CUDA tensors on one device");
  TORCH_CHECK(z.scalar_type() == q.scalar_type(), "neighbors and query dtypes differ");
  TORCH_CHECK(z.dim() >= 4 && q.dim() == z.dim() - 1 &&
                  z.sizes().slice(0, z.dim() - 4) == q.sizes().slice(0, q.dim() - 3) &&
                  z.size(-3) == q.size(-3),
              "neighbors must be (..., k, C, P, P) and query (..., C, p, p), got ", z.sizes(),
              " and ", q.sizes());
  TORCH_CHECK(eps >= 0, "eps must be non-negative");
  Dims d{1, z.size(-4), z.size(-3), z.size(-2) * z.size(-1), q.size(-2) * q.size(-1)};
  TORCH_CHECK(d.PP >= 2 && d.pp >= 2, "patches need at least 2 values for an unbiased variance");
  for (int64_t i = 0; i < z.dim() - 4; ++i) d.N *= z.size(i);
  return d;
}

at::Tensor adapn_fwd_cuda(const at::Tensor& z_in, const at::Tensor& q_in, double eps) {
  const Dims d = dims_from(z_in, q_in, eps);
  const sr_cuda::DeviceGuard guard(z_in.device());
  const at::Tensor z = z_in.contiguous(), q = q_in.contiguous();
  at::Tensor out = at::empty_like(z);
  sr_cuda::check_status(
      sr_cuda::adapn_fwd(z.const_data_ptr(), q.const_data_ptr(), out.mutable_data_ptr(),
                         sr_cuda::dtype_of(z), d.N, d.k, d.C, d.PP, d.pp, eps,
                         sr_cuda::stream_of(z)),
      "adapn forward kernel");
  return out;
}

std::tuple<at::Tensor, at::Tensor> adapn_bwd_cuda(const at::Tensor& grad_in, const at::Tensor& z_in,
                                                  const at::Tensor& q_in, double eps) {
  const Dims d = dims_from(z_in, q_in, eps);
  TORCH_CHECK(grad_in.sizes() == z_in.sizes() && grad_in.device() == z_in.device(),
              "grad_out must be shaped like neighbors, on its device");
  const sr_cuda::DeviceGuard guard(z_in.device());
  const at::Tensor z = z_in.contiguous(), q = q_in.contiguous();
  const at::Tensor g = grad_in.to(z.scalar_type()).contiguous();
  at::Tensor gz = at::empty_like(z), gq = at::empty_like(q);
  sr_cuda::check_status(
      sr_cuda::adapn_bwd(g.const_data_ptr(), z.const_data_ptr(), q.const_data_ptr(),
                         gz.mutable_data_ptr(), gq.mutable_data_ptr(), sr_cuda::dtype_of(z), d.N,
                         d.k, d.C, d.PP, d.pp, eps, sr_cuda::stream_of(z)),
      "adapn backward kernel");
  return {gz, gq};
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) {
  m.impl("_adapn_fwd", &adapn_fwd_cuda);
  m.impl("_adapn_bwd", &adapn_bwd_cuda);
}
