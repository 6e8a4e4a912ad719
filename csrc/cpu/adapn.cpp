// CPU kernels for adapn: OpenMP over (n, c) groups, each a query patch and its k
// neighbour patches (see csrc/kernels/adapn.h). A group's k*PP + pp values stay in
// cache across the passes over them, so every input is read from memory once.
#include <torch/library.h>

#include <tuple>

#include "checks/adapn.h"
#include "cpu/dispatch.h"
#include "kernels/adapn.h"

namespace {

// neighbors (..., k, C, P1, P2), query (..., C, p1, p2); any P1*P2, p1*p2 >= 2.
// The loops live in templates because OpenMP pragmas cannot sit inside the
// AT_DISPATCH macro's lambda argument.
template <typename T>
void fwd_impl(const T* z, const T* q, T* out, const sr::AdapnDims d, double eps) {
  using Acc = at::opmath_type<T>;
  const int64_t stride = d.C * d.PP;
#pragma omp parallel for schedule(static) if (sr_cpu::worth_threads(d.N * d.k * stride))
  for (int64_t g = 0; g < sr::adapn_groups(d); ++g) {
    const int64_t off = sr::adapn_neighbor_offset(d, g, 0);
    sr::adapn_group_fwd<T, Acc>(z + off, q + sr::adapn_query_offset(d, g), out + off, d.k, stride, d.PP, d.pp,
                                Acc(eps));
  }
}

template <typename T>
void bwd_impl(const T* g, const T* z, const T* q, T* gz, T* gq, const sr::AdapnDims d, double eps) {
  using Acc = at::opmath_type<T>;
  const int64_t stride = d.C * d.PP;
#pragma omp parallel for schedule(static) if (sr_cpu::worth_threads(d.N * d.k * stride))
  for (int64_t grp = 0; grp < sr::adapn_groups(d); ++grp) {
    const int64_t off = sr::adapn_neighbor_offset(d, grp, 0), qoff = sr::adapn_query_offset(d, grp);
    sr::adapn_group_bwd<T, Acc>(g + off, z + off, q + qoff, gz + off, gq + qoff, d.k, stride, d.PP, d.pp, Acc(eps));
  }
}

at::Tensor adapn_fwd_cpu(const at::Tensor& z_in, const at::Tensor& q_in, double eps) {
  sr_cpu::check_cpu_float(z_in, "neighbors");
  const auto d = sr_check::adapn_dims(z_in, q_in, eps);
  const at::Tensor z = z_in.contiguous(), q = q_in.contiguous();
  at::Tensor out = at::empty_like(z);
  SR_DISPATCH_FLOATS(z.scalar_type(), "adapn_fwd_cpu", [&] {
    fwd_impl<scalar_t>(z.const_data_ptr<scalar_t>(), q.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), d,
                       eps);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> adapn_bwd_cpu(const at::Tensor& grad_in, const at::Tensor& z_in,
                                                 const at::Tensor& q_in, double eps) {
  sr_cpu::check_cpu_float(z_in, "neighbors");
  const auto d = sr_check::adapn_backward_dims(grad_in, z_in, q_in, eps);
  const at::Tensor z = z_in.contiguous(), q = q_in.contiguous();
  const at::Tensor g = grad_in.to(z.scalar_type()).contiguous();
  at::Tensor gz = at::empty_like(z), gq = at::empty_like(q);
  SR_DISPATCH_FLOATS(z.scalar_type(), "adapn_bwd_cpu", [&] {
    bwd_impl<scalar_t>(g.const_data_ptr<scalar_t>(), z.const_data_ptr<scalar_t>(), q.const_data_ptr<scalar_t>(),
                       gz.mutable_data_ptr<scalar_t>(), gq.mutable_data_ptr<scalar_t>(), d, eps);
  });
  return {gz, gq};
}

}  // namespace

// The schemas of the kernels below (sr_ops/ops/<op>.py calls them; the CUDA glue registers
// the same names for CUDA tensors).
TORCH_LIBRARY_FRAGMENT(sr_ops, m) {
  // neighbors (..., k, C, P, P), query (..., C, p, p) of one dtype.
  m.def("_adapn_fwd(Tensor neighbors, Tensor query, float eps) -> Tensor");
  m.def("_adapn_bwd(Tensor grad_out, Tensor neighbors, Tensor query, float eps) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) {
  m.impl("_adapn_fwd", &adapn_fwd_cpu);
  m.impl("_adapn_bwd", &adapn_bwd_cpu);
}
