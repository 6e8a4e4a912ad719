// CPU kernels for eca (see csrc/kernels/eca.h). Forward: one task a thread per image, over
// a channel range, summing planes a few planes ahead of gating them (fwd_channels). Backward:
// OpenMP over the (b, c) planes for the pooled sums and for the elementwise pass, the small
// per-image step in between, the weight gradient summed over the images in order
// (deterministic whatever the thread count). The pooled sums and the per-image step run
// in double whatever the input type: a plane is 65K values at 256x256, and the weight
// gradient sums C such planes' g * x, where float partial sums lose ~1e-4 relative.
// float32 planes are read by AVX2-cloned loops instead: float lanes within blocks of 256
// values (exact enough: 8 adds per lane), the blocks added in double.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <xmmintrin.h>

#include <algorithm>
#include <cstdint>
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

// Adds the sums of x[b0, n) to total block by block (b0 a multiple of kBlock), so a plane
// summed in several calls gets the same total as in one.
SR_CPU_CLONES void blocks_sum_f32(const float* x, int64_t b0, int64_t n, double& total) {
  for (; b0 < n; b0 += kBlock) {
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
}

double plane_sum_f32(const float* x, int64_t n) {
  double total = 0.0;
  blocks_sum_f32(x, 0, n, total);
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

// y = x * a + b over one plane. Streaming stores: y is not read back here, and written
// through the caches it would evict x, which the forward reads twice (measured at 2
// threads, 1x64x256x256: with the pipelined forward, 1.17-1.41x eager against 0.86-1.07x
// for two plain passes, in alternating runs of `sr-ops bench --op eca`).
SR_CPU_CLONES void plane_affine_f32(const float* x, float a, float b, float* y, int64_t n) {
  int64_t e = 0;
  for (; e < n && (reinterpret_cast<uintptr_t>(y + e) & 15); ++e) y[e] = x[e] * a + b;
  const __m128 va = _mm_set1_ps(a), vb = _mm_set1_ps(b);
  for (; e + 4 <= n; e += 4) _mm_stream_ps(y + e, _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(x + e), va), vb));
  for (; e < n; ++e) y[e] = x[e] * a + b;
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

// Adds the sums of x[b0, b1) to total (b0 a multiple of kBlock).
template <typename T, typename Red>
void range_sum(const T* x, int64_t b0, int64_t b1, Red& total) {
  if constexpr (std::is_same_v<T, float>) {
    blocks_sum_f32(x, b0, b1, total);
  } else {
    total += sr::eca_plane_sum<T, Red>(x + b0, b1 - b0);
  }
}

// One task: channels [c0, c1) of one image, in a pipeline: while plane c is gated and
// written, plane c + r + 1 is summed, chunk by chunk in step, so the loads of the one
// overlap the other's stores (which bypass the caches; see plane_affine_f32) instead of
// each waiting for the other. Each plane is read again ~3 planes after its first read, from
// this CPU's 1 MiB L2 rather than from L3, as two whole passes would. A task sums its r halo
// planes on either side itself (a few % of extra reads at C / threads channels a task)
// and keeps its own means, so no two threads write one value.
template <typename T>
void fwd_channels(const T* x, const T* w, T* y, const EcaDims d, int64_t b, int64_t c0, int64_t c1, double* s) {
  using Acc = at::opmath_type<T>;
  using Red = double;
  constexpr int64_t kChunk = 16 * kBlock;
  const int64_t r = d.k / 2, o = b * d.C, HW = d.HW, last = std::min(d.C, c1 + r);  // sums [.., last)
  const T* const xb = x + o * HW;
  T* const yb = y + o * HW;
  for (int64_t c = std::max<int64_t>(0, c0 - r); c < std::min(last, c0 + r + 1); ++c) {
    Red total = 0;
    range_sum<T, Red>(xb + c * HW, 0, HW, total);
    s[c] = total / Red(HW);
  }
  for (int64_t c = c0; c < c1; ++c) {
    const Acc gate = Acc(sr::eca_sigmoid(sr::eca_logit<T, Red>(s, w, d.C, d.k, c)));
    const int64_t next = c + r + 1;
    Red total = 0;
    for (int64_t e0 = 0; e0 < HW; e0 += kChunk) {
      const int64_t e1 = std::min(HW, e0 + kChunk);
      if (next < last) range_sum<T, Red>(xb + next * HW, e0, e1, total);
      plane_affine<T, Acc>(xb + c * HW + e0, gate, Acc(0), yb + c * HW + e0, e1 - e0);
    }
    if (next < last) s[next] = total / Red(HW);
  }
}

template <typename T>
void fwd_impl(const T* x, const T* w, T* y, const EcaDims d) {
  const bool par = sr_cpu::worth_threads(d.B * d.C * d.HW);
  const int64_t threads = par ? std::max<int64_t>(1, at::get_num_threads()) : 1;
  // One channel range a thread per image: more tasks would only add halo reads.
  const int64_t per = (d.C + threads - 1) / threads, chunks = (d.C + per - 1) / per;
#pragma omp parallel if (par)
  {
    std::vector<double> s(d.C);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < d.B * chunks; ++task) {
      const int64_t b = task / chunks, c0 = (task % chunks) * per;
      fwd_channels<T>(x, w, y, d, b, c0, std::min(d.C, c0 + per), s.data());
    }
  }
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
