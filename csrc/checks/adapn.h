// adapn's argument checks, shared by the CPU kernels and the CUDA glue.
#pragma once

#include "check.h"
#include "kernels/adapn.h"

namespace sr_check {

// neighbors (..., k, C, P, P) and query (..., C, p, p), one dtype and device, each patch
// with at least 2 values (an unbiased variance).
inline sr::AdapnDims adapn_dims(const at::Tensor& z, const at::Tensor& q, double eps_) {
  dims_at_least(z, "neighbors", 4, "(..., k, C, P, P)");
  floating(z, "neighbors");
  same_dtype_device(z, "neighbors", {{&q, "query"}});
  SR_CHECK_SHAPE(q.dim() == z.dim() - 1 && z.sizes().slice(0, z.dim() - 4) == q.sizes().slice(0, q.dim() - 3) &&
                     z.size(-3) == q.size(-3),
                 q, "query", "(..., C, p, p) with the leading dims and C of neighbors");
  eps(eps_);
  sr::AdapnDims d{1, z.size(-4), z.size(-3), z.size(-2) * z.size(-1), q.size(-2) * q.size(-1)};
  SR_CHECK_SHAPE(d.PP >= 2, z, "neighbors", "(..., k, C, P, P) with at least 2 values a patch");
  SR_CHECK_SHAPE(d.pp >= 2, q, "query", "(..., C, p, p) with at least 2 values a patch");
  for (int64_t i = 0; i < z.dim() - 4; ++i) d.N *= z.size(i);
  return d;
}

inline sr::AdapnDims adapn_backward_dims(const at::Tensor& grad, const at::Tensor& z, const at::Tensor& q,
                                         double eps_) {
  const auto d = adapn_dims(z, q, eps_);
  same_device(grad, "grad_out", z, "neighbors");
  shape_like(grad, "grad_out", z.sizes(), "neighbors");
  return d;
}

}  // namespace sr_check
