// CPU kernels for layernorm2d: OpenMP over tiles of up to sr::kLn2dTile neighbouring
// pixels of one image (see csrc/kernels/layernorm2d.h). The weight and bias gradients
// are summed per fixed part of the tiles, then the parts in order: deterministic
// whatever the thread count.
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <type_traits>
#include <vector>

#include "checks/layernorm2d.h"
#include "cpu/clones.h"
#include "cpu/dispatch.h"
#include "cpu/layernorm_pixels.h"
#include "cpu/simd.h"
#include "kernels/gelu.h"
#include "kernels/layernorm2d.h"

namespace {

struct Ln2dDims {
  int64_t B, C, HW;
};

Ln2dDims dims_from(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps) {
  sr_cpu::check_cpu_float(x, "x");
  sr_check::layernorm2d_args(x, w, b, eps);
  return {x.size(0), x.size(1), x.size(2) * x.size(3)};
}

int64_t tiles_per_plane(const Ln2dDims& d) { return (d.HW + sr::kLn2dTile - 1) / sr::kLn2dTile; }

template <typename T>
void fwd_impl(const T* x, const T* w, const T* b, T* y, const Ln2dDims d, double eps) {
  using Acc = at::opmath_type<T>;
  const int64_t tp = tiles_per_plane(d);
#pragma omp parallel for schedule(static) if (sr_cpu::worth_threads(d.B * d.C * d.HW))
  for (int64_t t = 0; t < d.B * tp; ++t) {
    const int64_t p0 = (t % tp) * sr::kLn2dTile;
    const int64_t off = t / tp * d.C * d.HW + p0;
    sr::ln2d_tile_fwd<T, Acc>(x + off, w, b, y + off, d.C, d.HW, std::min(sr::kLn2dTile, d.HW - p0), Acc(eps));
  }
}

template <typename T>
void bwd_impl(const T* g, const T* x, const T* w, T* gx, T* gw, T* gb, const Ln2dDims d, double eps) {
  using Acc = at::opmath_type<T>;
  const int64_t tp = tiles_per_plane(d), tiles = d.B * tp;
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(64, tiles));
  const int64_t per = (tiles + parts - 1) / parts;
  std::vector<Acc> acc(parts * 2 * d.C, Acc(0));
#pragma omp parallel for schedule(static) if (sr_cpu::worth_threads(d.B * d.C * d.HW))
  for (int64_t part = 0; part < parts; ++part) {
    Acc* aw = acc.data() + part * 2 * d.C;
    for (int64_t t = part * per; t < std::min(tiles, (part + 1) * per); ++t) {
      const int64_t p0 = (t % tp) * sr::kLn2dTile;
      const int64_t off = t / tp * d.C * d.HW + p0;
      sr::ln2d_tile_bwd<T, Acc>(g + off, x + off, w, gx + off, aw, aw + d.C, d.C, d.HW,
                                std::min(sr::kLn2dTile, d.HW - p0), Acc(eps));
    }
  }
  for (int64_t c = 0; c < d.C; ++c) {
    Acc sw = Acc(0), sb = Acc(0);
    for (int64_t part = 0; part < parts; ++part) {
      sw += acc[part * 2 * d.C + c];
      sb += acc[part * 2 * d.C + d.C + c];
    }
    gw[c] = T(sw);
    gb[c] = T(sb);
  }
}

// Channels-last maps (what oneDNN's convolutions run fastest on, on the CPU): each pixel's
// C values are contiguous, so a pixel is one short two-pass reduction; OpenMP over pixels.
// X may be wider than T: gelu_layernorm2d's half types normalise a float copy of GELU(x).
// Shifted sums about the pixel's first value, as sr::ln2d_pixel_stats (why: there).
template <typename T, typename X = T>
void fwd_nhwc_pixels(const X* x, const T* w, const T* b, T* y, int64_t n, int64_t C, double eps) {
  using Acc = at::opmath_type<T>;
  for (int64_t px = 0; px < n; ++px) {
    const X* xp = x + px * C;
    T* yp = y + px * C;
    Acc x0, dm, rstd;
    sr::ln2d_pixel_stats<X, Acc>(xp, C, 1, Acc(eps), &x0, &dm, &rstd);
    for (int64_t c = 0; c < C; ++c) yp[c] = T(sr::ln2d_dev(Acc(xp[c]), x0, dm) * rstd * Acc(w[c]) + Acc(b[c]));
  }
}

}  // namespace

// float: the reductions and the affine step in eight-float vectors (C is a few dozen, so
// lanes lose nothing measurable), which the AVX2 clone runs as one register; the plain
// loops above run each pixel's sums one add at a time. Also naf_ffn's channels-last prologue.
// The sums are shifted by the pixel's first value (sr::ln2d_pixel_stats says why): one
// subtract more per value and pass, hidden behind the loads.
SR_CPU_CLONES void sr_cpu::layernorm_pixels_f32(const float* x, const float* w, const float* b, float* y, int64_t n,
                                                int64_t C, float eps) {
  using sr_simd::f32x8;
  using sr_simd::load8;
  const int64_t cv = C / 8 * 8;
  for (int64_t px = 0; px < n; ++px) {
    const float* xp = x + px * C;
    float* yp = y + px * C;
    const float x0 = xp[0];  // read before y (which may be x) is written
    const f32x8 x0v = sr_simd::splat8(x0);
    f32x8 acc{};
    for (int64_t c = 0; c < cv; c += 8) acc += load8(xp + c) - x0v;
    float dm = sr_simd::hsum8(acc);
    for (int64_t c = cv; c < C; ++c) dm += xp[c] - x0;
    dm /= float(C);
    const f32x8 dmv = sr_simd::splat8(dm);
    f32x8 sq{};
    for (int64_t c = 0; c < cv; c += 8) {
      const f32x8 dv = (load8(xp + c) - x0v) - dmv;
      sq += dv * dv;
    }
    float var = sr_simd::hsum8(sq);
    for (int64_t c = cv; c < C; ++c) var += ((xp[c] - x0) - dm) * ((xp[c] - x0) - dm);
    const float rstd = 1.0f / std::sqrt(var / float(C) + eps);
    const f32x8 rv = sr_simd::splat8(rstd);
    for (int64_t c = 0; c < cv; c += 8)
      sr_simd::store8(yp + c, ((load8(xp + c) - x0v) - dmv) * rv * load8(w + c) + load8(b + c));
    for (int64_t c = cv; c < C; ++c) yp[c] = ((xp[c] - x0) - dm) * rstd * w[c] + b[c];
  }
}

namespace {

template <typename T>
void fwd_nhwc(const T* x, const T* w, const T* b, T* y, const Ln2dDims d, double eps) {
  constexpr int64_t kChunk = 256;  // pixels per OpenMP iteration
  const int64_t n = d.B * d.HW, chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (sr_cpu::worth_threads(d.B * d.C * d.HW))
  for (int64_t i = 0; i < chunks; ++i) {
    const int64_t p0 = i * kChunk, m = std::min(kChunk, n - p0);
    if constexpr (std::is_same_v<T, float>) {
      sr_cpu::layernorm_pixels_f32(x + p0 * d.C, w, b, y + p0 * d.C, m, d.C, float(eps));
    } else {
      fwd_nhwc_pixels<T>(x + p0 * d.C, w, b, y + p0 * d.C, m, d.C, eps);
    }
  }
}

// gelu_layernorm2d's prologue, y[i] = gelu(x[i]) over a span that stays in cache for the
// layer norm that follows in place (one read of x, one write of y per fused call).
SR_CPU_CLONES_FMA void gelu_span_f32(const float* x, float* y, int64_t n) {
  const int64_t nv = n / 8 * 8;
  for (int64_t i = 0; i < nv; i += 8) sr_simd::store8(y + i, sr_simd::gelu8(sr_simd::load8(x + i)));
  for (int64_t i = nv; i < n; ++i) y[i] = sr::gelu<float>(x[i], false);
}

template <typename T>
void gelu_span(const T* x, T* y, int64_t n, bool tanh_approx) {
  using Acc = at::opmath_type<T>;
  if constexpr (std::is_same_v<T, float>) {
    if (!tanh_approx) return gelu_span_f32(x, y, n);
  }
  for (int64_t i = 0; i < n; ++i) y[i] = T(sr::gelu<Acc>(Acc(x[i]), tanh_approx));
}

// float16 / bfloat16 keep GELU(x) in a float scratch (per thread) and round once, at the
// norm's output (docs/design.md, Dtypes): GELU rounded to the half type first had 2-3x the
// error. float and double write GELU(x) into y and normalise it there, in place.
template <typename T>
constexpr bool kWidenGelu = !std::is_same_v<T, at::opmath_type<T>>;

template <typename T>
void gelu_fwd_nhwc(const T* x, const T* w, const T* b, T* y, const Ln2dDims d, double eps, bool tanh_approx) {
  using Acc = at::opmath_type<T>;
  constexpr int64_t kChunk = 256;  // pixels per OpenMP iteration, as fwd_nhwc
  const int64_t n = d.B * d.HW, chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel if (sr_cpu::worth_threads(d.B * d.C * d.HW))
  {
    std::vector<Acc> wide(kWidenGelu<T> ? kChunk * d.C : 0);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < chunks; ++i) {
      const int64_t p0 = i * kChunk, m = std::min(kChunk, n - p0);
      T* yc = y + p0 * d.C;
      if constexpr (kWidenGelu<T>) {
        const T* xc = x + p0 * d.C;
        for (int64_t j = 0; j < m * d.C; ++j) wide[j] = sr::gelu<Acc>(Acc(xc[j]), tanh_approx);
        fwd_nhwc_pixels<T, Acc>(wide.data(), w, b, yc, m, d.C, eps);
      } else {
        gelu_span<T>(x + p0 * d.C, yc, m * d.C, tanh_approx);
        if constexpr (std::is_same_v<T, float>) {
          sr_cpu::layernorm_pixels_f32(yc, w, b, yc, m, d.C, float(eps));
        } else {
          fwd_nhwc_pixels<T>(yc, w, b, yc, m, d.C, eps);
        }
      }
    }
  }
}

template <typename T>
void gelu_fwd_impl(const T* x, const T* w, const T* b, T* y, const Ln2dDims d, double eps, bool tanh_approx) {
  using Acc = at::opmath_type<T>;
  const int64_t tp = tiles_per_plane(d);
#pragma omp parallel if (sr_cpu::worth_threads(d.B * d.C * d.HW))
  {
    std::vector<Acc> wide(kWidenGelu<T> ? sr::kLn2dTile * d.C : 0);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < d.B * tp; ++t) {
      const int64_t p0 = (t % tp) * sr::kLn2dTile, n = std::min(sr::kLn2dTile, d.HW - p0);
      const int64_t off = t / tp * d.C * d.HW + p0;
      if constexpr (kWidenGelu<T>) {
        for (int64_t c = 0; c < d.C; ++c)
          for (int64_t p = 0; p < n; ++p)
            wide[c * sr::kLn2dTile + p] = sr::gelu<Acc>(Acc(x[off + c * d.HW + p]), tanh_approx);
        sr::ln2d_tile_fwd_strided<Acc, T, Acc>(wide.data(), sr::kLn2dTile, w, b, y + off, d.HW, d.C, n, Acc(eps));
      } else {
        for (int64_t c = 0; c < d.C; ++c) gelu_span<T>(x + off + c * d.HW, y + off + c * d.HW, n, tanh_approx);
        sr::ln2d_tile_fwd<T, Acc>(y + off, w, b, y + off, d.C, d.HW, n, Acc(eps));  // in place
      }
    }
  }
}

at::Tensor layernorm2d_fwd_cpu(const at::Tensor& x_in, const at::Tensor& w_in, const at::Tensor& b_in, double eps) {
  const auto d = dims_from(x_in, w_in, b_in, eps);
  if (sr_cpu::channels_last(x_in)) {  // output channels-last too (sr_ops/ops/layernorm2d.py's contract)
    const at::Tensor w = w_in.contiguous(), b = b_in.contiguous();
    at::Tensor y = at::empty_like(x_in, at::MemoryFormat::ChannelsLast);
    SR_DISPATCH_FLOATS(x_in.scalar_type(), "layernorm2d_fwd_cpu", [&] {
      fwd_nhwc<scalar_t>(x_in.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(),
                         y.mutable_data_ptr<scalar_t>(), d, eps);
    });
    return y;
  }
  const at::Tensor x = x_in.contiguous(), w = w_in.contiguous(), b = b_in.contiguous();
  at::Tensor y = at::empty_like(x);
  SR_DISPATCH_FLOATS(x.scalar_type(), "layernorm2d_fwd_cpu", [&] {
    fwd_impl<scalar_t>(x.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(),
                       y.mutable_data_ptr<scalar_t>(), d, eps);
  });
  return y;
}

at::Tensor gelu_layernorm2d_fwd_cpu(const at::Tensor& x_in, const at::Tensor& w_in, const at::Tensor& b_in, double eps,
                                    c10::string_view approximate) {
  const auto d = dims_from(x_in, w_in, b_in, eps);
  sr_check::gelu_approximate(approximate);
  const bool tanh_approx = approximate == "tanh";
  const at::Tensor w = w_in.contiguous(), b = b_in.contiguous();
  if (sr_cpu::channels_last(x_in)) {
    at::Tensor y = at::empty_like(x_in, at::MemoryFormat::ChannelsLast);
    SR_DISPATCH_FLOATS(x_in.scalar_type(), "gelu_layernorm2d_fwd_cpu", [&] {
      gelu_fwd_nhwc<scalar_t>(x_in.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
                              b.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), d, eps, tanh_approx);
    });
    return y;
  }
  const at::Tensor x = x_in.contiguous();
  at::Tensor y = at::empty_like(x);
  SR_DISPATCH_FLOATS(x.scalar_type(), "gelu_layernorm2d_fwd_cpu", [&] {
    gelu_fwd_impl<scalar_t>(x.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(),
                            y.mutable_data_ptr<scalar_t>(), d, eps, tanh_approx);
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> layernorm2d_bwd_cpu(const at::Tensor& grad_in, const at::Tensor& x_in,
                                                                   const at::Tensor& w_in, const at::Tensor& b_in,
                                                                   double eps) {
  const auto d = dims_from(x_in, w_in, b_in, eps);
  sr_check::layernorm2d_backward_args(grad_in, x_in, w_in, b_in, eps);
  const at::Tensor x = x_in.contiguous(), w = w_in.contiguous();
  const at::Tensor g = grad_in.to(x.scalar_type()).contiguous();
  at::Tensor gx = at::empty_like(x), gw = at::empty_like(w), gb = at::empty_like(w);
  SR_DISPATCH_FLOATS(x.scalar_type(), "layernorm2d_bwd_cpu", [&] {
    bwd_impl<scalar_t>(g.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
                       gx.mutable_data_ptr<scalar_t>(), gw.mutable_data_ptr<scalar_t>(),
                       gb.mutable_data_ptr<scalar_t>(), d, eps);
  });
  return {gx, gw, gb};
}

}  // namespace

// The schemas of the kernels below (sr_ops/ops/<op>.py calls them; the CUDA glue registers
// the same names for CUDA tensors).
TORCH_LIBRARY_FRAGMENT(sr_ops, m) {
  // x (B, C, H, W), weight / bias (C,), one dtype; backward -> (grad_x, grad_weight, grad_bias).
  m.def("_layernorm2d_fwd(Tensor x, Tensor weight, Tensor bias, float eps) -> Tensor");
  m.def(
      "_layernorm2d_bwd(Tensor grad_out, Tensor x, Tensor weight, Tensor bias, float eps) -> (Tensor, Tensor, "
      "Tensor)");
  // layernorm2d(gelu(x)); approximate "none" (erf) or "tanh", as F.gelu. Its backward is
  // _layernorm2d_bwd at gelu(x), then GELU's derivative (sr_ops/ops/gelu_layernorm2d.py).
  m.def("_gelu_layernorm2d_fwd(Tensor x, Tensor weight, Tensor bias, float eps, str approximate) -> Tensor");
}

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) {
  m.impl("_layernorm2d_fwd", &layernorm2d_fwd_cpu);
  m.impl("_layernorm2d_bwd", &layernorm2d_bwd_cpu);
  m.impl("_gelu_layernorm2d_fwd", &gelu_layernorm2d_fwd_cpu);
}
