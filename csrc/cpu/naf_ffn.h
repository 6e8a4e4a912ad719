// Shared by the naf_ffn CPU forward and backward (naf_ffn.cpp, naf_ffn_backward.cpp): the
// per-tile buffers, the LayerNorm prologue and the forward's intermediates of one tile.
#pragma once

#include <ATen/ATen.h>

#include "check.h"
#include "cpu/clones.h"
#include "cpu/dispatch.h"
#include "cpu/layernorm_pixels.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

namespace sr_naf {

inline constexpr int64_t kTile = 256;  // pixels per tile: the (2F, T) block of F = 64 is 128 KB in float

struct Dims {
  int64_t B, C, HW, F;
};

template <typename T>
struct Buffers {
  // xn (C,n) h (2F,n) g (F,n) z (C,n); per pixel the mean as shift + dm (shift: its first
  // channel's value; shifted sums, see normalise) and rstd.
  std::vector<T> xn, h, g, z, shift, dm, rstd;
  Buffers(const Dims& d)
      : xn(d.C * kTile), h(2 * d.F * kTile), g(d.F * kTile), z(d.C * kTile), shift(kTile), dm(kTile), rstd(kTile) {}
};

// y - mean of one value of pixel t, as (y - shift) - dm: see normalise.
template <typename T>
inline T deviation(const Buffers<T>& w, int64_t t, T y) {
  return (y - w.shift[t]) - w.dm[t];
}

// The (C, n) block of image b at pixel p0, normalised over C and scaled: xn = LN(y).
// Shifted sums: y_c - y_0 is exact while the values lie within a factor 2 of each other, so a
// mean 1e4x the spread loses nothing (sum / C lost its last bits, which y - mean then carried
// into every value), and a pixel of equal values has zero variance exactly (NaN with eps = 0).
// Two passes: a one-pass variance cancels at large means.
template <typename T>
void normalise(const T* y, const T* nw, const T* nb, Buffers<T>& w, const Dims& d, int64_t n, T eps) {
  std::copy(y, y + n, w.shift.begin());
  std::fill(w.dm.begin(), w.dm.begin() + n, T(0));
  std::fill(w.rstd.begin(), w.rstd.begin() + n, T(0));
  for (int64_t c = 0; c < d.C; ++c) {
    const T* row = y + c * d.HW;
    for (int64_t t = 0; t < n; ++t) w.dm[t] += row[t] - w.shift[t];
  }
  for (int64_t t = 0; t < n; ++t) w.dm[t] /= T(d.C);
  for (int64_t c = 0; c < d.C; ++c) {
    const T* row = y + c * d.HW;
    for (int64_t t = 0; t < n; ++t) {
      const T dv = deviation(w, t, row[t]);
      w.rstd[t] += dv * dv;
    }
  }
  for (int64_t t = 0; t < n; ++t) w.rstd[t] = T(1) / std::sqrt(w.rstd[t] / T(d.C) + eps);
  for (int64_t c = 0; c < d.C; ++c) {
    const T* row = y + c * d.HW;
    T* out = w.xn.data() + c * n;
    const T a = nw[c], b = nb[c];
    for (int64_t t = 0; t < n; ++t) out[t] = deviation(w, t, row[t]) * w.rstd[t] * a + b;
  }
}

// The kernels' arguments: y (B, C, H, W), w_in (2F, C), w_out (C, F), the vectors, one
// dtype, all on the CPU.
inline void check_args(const at::Tensor& y_in, const at::Tensor& nw_in, const at::Tensor& nb_in,
                       const at::Tensor& w_in_in, const at::Tensor& b_in_in, const at::Tensor& w_out_in,
                       const at::Tensor& b_out_in, const at::Tensor& gamma_in, double eps) {
  sr_cpu::check_cpu_float(y_in, "y");
  sr_check::dims(y_in, "y", 4, "(B, C, H, W)");
  SR_CHECK_SHAPE(y_in.size(1) > 0, y_in, "y", "(B, C, H, W) with C >= 1");
  sr_check::same_dtype_device(y_in, "y",
                              {{&nw_in, "norm_weight"},
                               {&nb_in, "norm_bias"},
                               {&w_in_in, "w_in"},
                               {&b_in_in, "b_in"},
                               {&w_out_in, "w_out"},
                               {&b_out_in, "b_out"},
                               {&gamma_in, "gamma"}});
  const int64_t C = y_in.size(1);
  SR_CHECK_SHAPE(w_in_in.dim() == 2 && w_in_in.size(1) == C && w_in_in.size(0) > 0 && w_in_in.size(0) % 2 == 0, w_in_in,
                 "w_in", "(2F, C) with y's C and F >= 1");
  const int64_t F = w_in_in.size(0) / 2;
  sr_check::shape_is(w_out_in, "w_out", {C, F}, "(C, F)");
  sr_check::shape_is(nw_in, "norm_weight", {C}, "(C,)");
  sr_check::shape_is(nb_in, "norm_bias", {C}, "(C,)");
  sr_check::shape_is(b_in_in, "b_in", {2 * F}, "(2F,)");
  sr_check::shape_is(b_out_in, "b_out", {C}, "(C,)");
  sr_check::shape_is(gamma_in, "gamma", {C}, "(C,)");
  sr_check::eps(eps);
}

// c (m, n) = op(a) . op(b), row-major blocks; op transposes when asked. BLAS through
// at::mm_out on from_blob views: worker threads run with the autograd keys on, where an
// out= call on tensors that require grad (the weights) is refused.
template <typename T>
void gemm(T* c, const T* a, int64_t ar, int64_t ac, bool ta, const T* b, int64_t br, int64_t bc, bool tb) {
  const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  at::Tensor A = at::from_blob(const_cast<T*>(a), {ar, ac}, opts), B = at::from_blob(const_cast<T*>(b), {br, bc}, opts);
  if (ta) A = A.t();
  if (tb) B = B.t();
  at::Tensor out = at::from_blob(c, {A.size(0), B.size(1)}, opts);
  at::mm_out(out, A, B);
}

// The forward's intermediates of one (C, n) tile of y (channel stride HW): xn = LN(y),
// h = W_in . xn + b_in, g = h[:F] * h[F:], z = W_out . g + b_out.
template <typename T>
void forward_tile(const T* y, const T* nw, const T* nb, const T* w_in, const T* b_in, const T* w_out, const T* b_out,
                  Buffers<T>& w, const Dims& d, int64_t n, T eps) {
  normalise(y, nw, nb, w, d, n, eps);
  gemm(w.h.data(), w_in, 2 * d.F, d.C, false, w.xn.data(), d.C, n, false);
  for (int64_t f = 0; f < 2 * d.F; ++f) {
    T* row = w.h.data() + f * n;
    for (int64_t t = 0; t < n; ++t) row[t] += b_in[f];
  }
  for (int64_t f = 0; f < d.F; ++f) {
    const T *a = w.h.data() + f * n, *b = w.h.data() + (d.F + f) * n;
    T* g = w.g.data() + f * n;
    for (int64_t t = 0; t < n; ++t) g[t] = a[t] * b[t];
  }
  gemm(w.z.data(), w_out, d.C, d.F, false, w.g.data(), d.F, n, false);
  for (int64_t c = 0; c < d.C; ++c) {
    T* row = w.z.data() + c * n;
    for (int64_t t = 0; t < n; ++t) row[t] += b_out[c];
  }
}

// LN over each of n pixels' C contiguous channels (the float form: sr_cpu::layernorm_pixels_f32).
template <typename T>
void layernorm_pixels(const T* y, const T* nw, const T* nb, T* xn, int64_t n, int64_t C, T eps) {
  for (int64_t t = 0; t < n; ++t) {
    const T* px = y + t * C;
    const T x0 = px[0];  // shifted sums, two passes, as normalise()
    T dm = T(0), var = T(0);
    for (int64_t c = 0; c < C; ++c) dm += px[c] - x0;
    dm /= T(C);
    for (int64_t c = 0; c < C; ++c) var += ((px[c] - x0) - dm) * ((px[c] - x0) - dm);
    const T rstd = T(1) / std::sqrt(var / T(C) + eps);
    for (int64_t c = 0; c < C; ++c) xn[t * C + c] = ((px[c] - x0) - dm) * rstd * nw[c] + nb[c];
  }
}

// g (n, F) = (h[:, :F] + b[:F]) * (h[:, F:] + b[F:]) for h (n, 2F): SimpleGate with conv_in's bias.
template <typename T>
SR_CPU_CLONES void gate_pixels(const T* h, const T* b, T* g, int64_t n, int64_t F) {
  for (int64_t t = 0; t < n; ++t)
    for (int64_t f = 0; f < F; ++f) g[t * F + f] = (h[t * 2 * F + f] + b[f]) * (h[t * 2 * F + F + f] + b[F + f]);
}

// out (n, C) = y + gamma * (z + b_out): the residual epilogue of a pixel-major tile.
template <typename T>
SR_CPU_CLONES void residual_pixels(const T* y, const T* z, const T* b_out, const T* gamma, T* out, int64_t n,
                                   int64_t C) {
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < C; ++c) out[t * C + c] = y[t * C + c] + gamma[c] * (z[t * C + c] + b_out[c]);
}

// The channels-last form: y is an (n, C) block of pixels (one pixel's channels contiguous),
// so the tile is pixel-major and each 1x1 is (n, K) . W^T. Leaves z (n, C) = conv_out(...) without
// its bias (residual_pixels adds it).
template <typename T>
void forward_tile_nhwc(const T* y, const T* nw, const T* nb, const T* w_in, const T* b_in, const T* w_out,
                       const T* b_out, Buffers<T>& w, const Dims& d, int64_t n, T eps) {
  const int64_t C = d.C, F = d.F;
  if constexpr (std::is_same_v<T, float>) {
    sr_cpu::layernorm_pixels_f32(y, nw, nb, w.xn.data(), n, C, eps);  // eight-float lanes
  } else {
    layernorm_pixels(y, nw, nb, w.xn.data(), n, C, eps);
  }
  gemm(w.h.data(), w.xn.data(), n, C, false, w_in, 2 * F, C, true);
  gate_pixels(w.h.data(), b_in, w.g.data(), n, F);
  gemm(w.z.data(), w.g.data(), n, F, false, w_out, C, F, true);
}

}  // namespace sr_naf
