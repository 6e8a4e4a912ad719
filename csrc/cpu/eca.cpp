// CPU kernels for eca (see csrc/kernels/eca.h): OpenMP over the (b, c) planes for the
// pooled sums and for the elementwise pass; the small per-image step in between runs
// per image, and the weight gradient is summed over the images in order
// (deterministic whatever the thread count). The pooled sums and the per-image step run
// in double whatever the input type: a plane is 65K values at 256x256, and the weight
// gradient sums C such planes' g * x, where float partial sums lose ~1e-4 relative.
// float32 planes are read by AVX2-cloned loops instead: float lanes within blocks of 256
// values (exact enough: 8 adds per lane), the blocks added in double.
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <type_traits>
#include <vector>

#include "checks/eca.h"
#include "cpu/clones.h"
#include "cpu/dispatch.h"
#include "cpu/simd.h"
#include "kernels/eca.h"

namespace {

constexpr int64_t kBlock = 256;
using sr_simd::f32x8;
using sr_simd::load8;

SR_CPU_CLONES double plane_sum_f32(const float* x, int64_t n) {
  double total = 0.0;
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t b1 = std::min(n, b0 + kBlock);
    f32x8 a0{}, a1{}, a2{}, a3{};  // four chains hide the add latency
    int64_t e = b0;
    for (; e + 32 <= b1; e += 32) {
      a0 += load8(x + e);
      a1 += load8(x + e + 8);
      a2 += load8(x + e + 16);
      a3 += load8(x + e + 24);
    }
    double part = double(sr_simd::hsum8((a0 + a1) + (a2 + a3)));
    for (; e < b1; ++e) part += double(x[e]);
    total += part;
  }
  return total;
}

SR_CPU_CLONES double plane_dot_f32(const float* g, const float* x, int64_t n) {
  double total = 0.0;
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t b1 = std::min(n, b0 + kBlock);
    f32x8 a0{}, a1{}, a2{}, a3{};
    int64_t e = b0;
    for (; e + 32 <= b1; e += 32) {
      a0 += load8(g + e) * load8(x + e);
      a1 += load8(g + e + 8) * load8(x + e + 8);
      a2 += load8(g + e + 16) * load8(x + e + 16);
      a3 += load8(g + e + 24) * load8(x + e + 24);
    }
    double part = double(sr_simd::hsum8((a0 + a1) + (a2 + a3)));
    for (; e < b1; ++e) part += double(g[e]) * double(x[e]);
    total += part;
  }
  return total;
}

// y = x * a + b over one plane.
SR_CPU_CLONES void plane_affine_f32(const float* x, float a, float b, float* y, int64_t n) {
  for (int64_t e = 0; e < n; ++e) y[e] = x[e] * a + b;
}

template <typename T, typename Red>
Red plane_sum(const T* x, int64_t n) {
  if constexpr (std::is_same_v<T, float>) return plane_sum_f32(x, n);
  return sr::eca_plane_sum<T, Red>(x, n);
}

template <typename T, typename Red>
Red plane_dot(const T* g, const T* x, int64_t n) {
  if constexpr (std::is_same_v<T, float>) return plane_dot_f32(g, x, n);
  return sr::eca_plane_dot<T, Red>(g, x, n);
}

template <typename T, typename Acc>
void plane_affine(const T* x, Acc a, Acc b, T* y, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    plane_affine_f32(x, a, b, y, n);
  } else {
    for (int64_t e = 0; e < n; ++e) y[e] = T(Acc(x[e]) * a + b);
  }
}

struct EcaDims {
  int64_t B, C, HW, k;
};

EcaDims dims_from(const at::Tensor& x, const at::Tensor& w) {
  sr_cpu::check_cpu_float(x, "x");
  sr_check::eca_args(x, w);
  return {x.size(0), x.size(1), x.size(2) * x.size(3), w.size(0)};
}

template <typename T>
void fwd_impl(const T* x, const T* w, T* y, const EcaDims d) {
  using Acc = at::opmath_type<T>;
  using Red = double;
  const int64_t planes = d.B * d.C;
  const bool par = sr_cpu::worth_threads(planes * d.HW);
  std::vector<Red> s(planes), gate(planes);
#pragma omp parallel for schedule(static) if (par)
  for (int64_t pl = 0; pl < planes; ++pl) s[pl] = plane_sum<T, Red>(x + pl * d.HW, d.HW) / Red(d.HW);
  for (int64_t b = 0; b < d.B; ++b) sr::eca_image_gates<T, Red>(s.data() + b * d.C, w, gate.data() + b * d.C, d.C, d.k);
#pragma omp parallel for schedule(static) if (par)
  for (int64_t pl = 0; pl < planes; ++pl)
    plane_affine<T, Acc>(x + pl * d.HW, Acc(gate[pl]), Acc(0), y + pl * d.HW, d.HW);
}

template <typename T>
void bwd_impl(const T* g, const T* x, const T* w, T* gx, T* gw, const EcaDims d) {
  using Acc = at::opmath_type<T>;
  using Red = double;
  const int64_t planes = d.B * d.C;
  const bool par = sr_cpu::worth_threads(planes * d.HW);
  std::vector<Red> s(planes), t(planes), gate(planes), ds(planes), da(d.C), gwa(d.k, Red(0));
#pragma omp parallel for schedule(static) if (par)
  for (int64_t pl = 0; pl < planes; ++pl) {
    s[pl] = plane_sum<T, Red>(x + pl * d.HW, d.HW) / Red(d.HW);
    t[pl] = plane_dot<T, Red>(g + pl * d.HW, x + pl * d.HW, d.HW);
  }
  for (int64_t b = 0; b < d.B; ++b) {
    const int64_t o = b * d.C;
    sr::eca_image_bwd<T, Red>(s.data() + o, t.data() + o, w, gate.data() + o, da.data(), ds.data() + o, gwa.data(), d.C,
                              d.k, d.HW);
  }
  for (int64_t j = 0; j < d.k; ++j) gw[j] = T(gwa[j]);
#pragma omp parallel for schedule(static) if (par)
  for (int64_t pl = 0; pl < planes; ++pl)
    plane_affine<T, Acc>(g + pl * d.HW, Acc(gate[pl]), Acc(ds[pl]), gx + pl * d.HW, d.HW);
}

at::Tensor eca_fwd_cpu(const at::Tensor& x_in, const at::Tensor& w_in) {
  const auto d = dims_from(x_in, w_in);
  const at::Tensor x = x_in.contiguous(), w = w_in.contiguous();
  at::Tensor y = at::empty_like(x);
  SR_DISPATCH_FLOATS(x.scalar_type(), "eca_fwd_cpu", [&] {
    fwd_impl<scalar_t>(x.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), d);
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor> eca_bwd_cpu(const at::Tensor& grad_in, const at::Tensor& x_in,
                                               const at::Tensor& w_in) {
  const auto d = dims_from(x_in, w_in);
  sr_check::eca_backward_args(grad_in, x_in, w_in);
  const at::Tensor x = x_in.contiguous(), w = w_in.contiguous();
  const at::Tensor g = grad_in.to(x.scalar_type()).contiguous();
  at::Tensor gx = at::empty_like(x), gw = at::empty_like(w);
  SR_DISPATCH_FLOATS(x.scalar_type(), "eca_bwd_cpu", [&] {
    bwd_impl<scalar_t>(g.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
                       gx.mutable_data_ptr<scalar_t>(), gw.mutable_data_ptr<scalar_t>(), d);
  });
  return {gx, gw};
}

}  // namespace

// The schemas of the kernels below (sr_ops/ops/<op>.py calls them; the CUDA glue registers
// the same names for CUDA tensors).
TORCH_LIBRARY_FRAGMENT(sr_ops, m) {
  // x (B, C, H, W), weight (k,) with k odd, one dtype; backward -> (grad_x, grad_weight).
  m.def("_eca_fwd(Tensor x, Tensor weight) -> Tensor");
  m.def("_eca_bwd(Tensor grad_out, Tensor x, Tensor weight) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) {
  m.impl("_eca_fwd", &eca_fwd_cpu);
  m.impl("_eca_bwd", &eca_bwd_cpu);
}
