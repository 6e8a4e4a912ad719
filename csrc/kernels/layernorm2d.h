// layernorm2d: NAFNet's LayerNorm2d, shared by the CPU and CUDA kernels.
//
// Layout: x, y, g (B, C, HW) contiguous; weight, bias (C,). Each pixel (b, p) is
// normalised over its C channel values, which lie HW apart:
//   y_c = xhat_c * w_c + b_c,  xhat_c = (x_c - mu) * rstd,  rstd = 1 / sqrt(var + eps),
// mu and the biased variance (divide by C) over the C values, from shifted sums (below).
//
// Backward, with gw_c = g_c * w_c:
//   dL/dx_c = rstd * (gw_c - mean_c(gw) - xhat_c * mean_c(gw * xhat)),
//   dL/dw_c = sum over pixels of g_c * xhat_c,  dL/db_c = sum over pixels of g_c.
//
// The CPU kernel walks a tile of up to kLn2dTile neighbouring pixels at a time with
// the channel loop outside and the pixel loop inside, so every read is contiguous and
// the per-pixel sums vectorise; the tile (C * kLn2dTile values) stays in cache across
// the passes.
#pragma once

#include <math.h>

#include "kernels/common.h"
#include "kernels/convert.h"
#include "kernels/gelu.h"

namespace sr {

constexpr int64_t kLn2dTile = 64;

SR_HOST_DEVICE float ln2d_rsqrt(float v) { return 1.0f / sqrtf(v); }
SR_HOST_DEVICE double ln2d_rsqrt(double v) { return 1.0 / sqrt(v); }

// A pixel's statistics from shifted sums: the deviations d_c = x_c - x_0 from its first value
// are exact while the values lie within a factor 2 of each other (Sterbenz), so a mean
// 1e4x the spread loses nothing to it (sum / C lost the mean's last bits, and x - mu carried
// that error into every output), and a pixel of equal values has every d_c = 0 exactly: zero
// variance, NaN with eps = 0 (docs/design.md). mean = shift + dm; x_c - mean is ln2d_dev.
template <typename Acc>
SR_HOST_DEVICE Acc ln2d_dev(Acc x, Acc shift, Acc dm) {
  return (x - shift) - dm;
}

// One pixel, two passes (deviations' mean, then squares about it), channel stride s.
template <typename T, typename Acc>
SR_HOST_DEVICE void ln2d_pixel_stats(const T* x, int64_t C, int64_t s, Acc eps, Acc* shift, Acc* dm, Acc* rstd) {
  const Acc x0 = sr_cast<Acc>(x[0]);
  Acc sum = Acc(0);
  for (int64_t c = 0; c < C; ++c) sum += sr_cast<Acc>(x[c * s]) - x0;
  const Acc m = sum / Acc(C);
  Acc ss = Acc(0);
  for (int64_t c = 0; c < C; ++c) {
    const Acc d = ln2d_dev(sr_cast<Acc>(x[c * s]), x0, m);
    ss += d * d;
  }
  *shift = x0;
  *dm = m;
  *rstd = ln2d_rsqrt(ss / Acc(C) + eps);
}

// One pixel, serially (CUDA: a thread per pixel; the C++ tests' kernel side).
template <typename T, typename Acc>
SR_HOST_DEVICE void ln2d_pixel_fwd(const T* x, const T* w, const T* b, T* y, int64_t C, int64_t s, Acc eps) {
  Acc x0, dm, rstd;
  ln2d_pixel_stats<T, Acc>(x, C, s, eps, &x0, &dm, &rstd);
  for (int64_t c = 0; c < C; ++c)
    y[c * s] = sr_cast<T>(ln2d_dev(sr_cast<Acc>(x[c * s]), x0, dm) * rstd * sr_cast<Acc>(w[c]) + sr_cast<Acc>(b[c]));
}

// gelu_layernorm2d's pixel for the half types: GELU(x) is recomputed in Acc for each of the
// three passes (stats, squares, output) instead of written to y, so it is rounded once, at y.
template <typename T, typename Acc>
SR_HOST_DEVICE void ln2d_pixel_gelu_fwd(const T* x, const T* w, const T* b, T* y, int64_t C, int64_t s, Acc eps,
                                        bool tanh_approx) {
  const Acc x0 = gelu<Acc>(sr_cast<Acc>(x[0]), tanh_approx);
  Acc sum = Acc(0);
  for (int64_t c = 0; c < C; ++c) sum += gelu<Acc>(sr_cast<Acc>(x[c * s]), tanh_approx) - x0;
  const Acc dm = sum / Acc(C);
  Acc ss = Acc(0);
  for (int64_t c = 0; c < C; ++c) {
    const Acc d = ln2d_dev(gelu<Acc>(sr_cast<Acc>(x[c * s]), tanh_approx), x0, dm);
    ss += d * d;
  }
  const Acc rstd = ln2d_rsqrt(ss / Acc(C) + eps);
  for (int64_t c = 0; c < C; ++c) {
    const Acc v = gelu<Acc>(sr_cast<Acc>(x[c * s]), tanh_approx);
    y[c * s] = sr_cast<T>(ln2d_dev(v, x0, dm) * rstd * sr_cast<Acc>(w[c]) + sr_cast<Acc>(b[c]));
  }
}

// dL/dx of one pixel; returns dm and rstd for the weight gradients (the shift is x[0]).
template <typename T, typename Acc>
SR_HOST_DEVICE void ln2d_pixel_bwd(const T* g, const T* x, const T* w, T* gx, int64_t C, int64_t s, Acc eps,
                                   Acc* dm_out, Acc* rstd_out) {
  Acc x0, dm, rstd;
  ln2d_pixel_stats<T, Acc>(x, C, s, eps, &x0, &dm, &rstd);
  Acc sgw = Acc(0), sgwx = Acc(0);
  for (int64_t c = 0; c < C; ++c) {
    const Acc gw = sr_cast<Acc>(g[c * s]) * sr_cast<Acc>(w[c]);
    sgw += gw;
    sgwx += gw * ln2d_dev(sr_cast<Acc>(x[c * s]), x0, dm) * rstd;
  }
  const Acc a = sgw / Acc(C), bb = sgwx / Acc(C);
  for (int64_t c = 0; c < C; ++c) {
    const Acc xhat = ln2d_dev(sr_cast<Acc>(x[c * s]), x0, dm) * rstd;
    gx[c * s] = sr_cast<T>(rstd * (sr_cast<Acc>(g[c * s]) * sr_cast<Acc>(w[c]) - a - xhat * bb));
  }
  *dm_out = dm;
  *rstd_out = rstd;
}

// A tile of n <= kLn2dTile neighbouring pixels (x points at the first; channel stride s),
// shifted by each pixel's first channel value as ln2d_pixel_stats.
template <typename T, typename Acc>
SR_HOST_DEVICE void ln2d_tile_stats(const T* x, int64_t C, int64_t s, int64_t n, Acc eps, Acc* x0, Acc* dm, Acc* rstd) {
  for (int64_t p = 0; p < n; ++p) {
    x0[p] = sr_cast<Acc>(x[p]);
    dm[p] = Acc(0);
  }
  for (int64_t c = 0; c < C; ++c)
    for (int64_t p = 0; p < n; ++p) dm[p] += sr_cast<Acc>(x[c * s + p]) - x0[p];
  for (int64_t p = 0; p < n; ++p) {
    dm[p] /= Acc(C);
    rstd[p] = Acc(0);
  }
  for (int64_t c = 0; c < C; ++c)
    for (int64_t p = 0; p < n; ++p) {
      const Acc d = ln2d_dev(sr_cast<Acc>(x[c * s + p]), x0[p], dm[p]);
      rstd[p] += d * d;
    }
  for (int64_t p = 0; p < n; ++p) rstd[p] = ln2d_rsqrt(rstd[p] / Acc(C) + eps);
}

// x of type X with channel stride sx, y of type T with channel stride sy: gelu_layernorm2d's
// float16 / bfloat16 path normalises a float tile of GELU(x) and rounds once, at y.
template <typename X, typename T, typename Acc>
SR_HOST_DEVICE void ln2d_tile_fwd_strided(const X* x, int64_t sx, const T* w, const T* b, T* y, int64_t sy, int64_t C,
                                          int64_t n, Acc eps) {
  Acc x0[kLn2dTile], dm[kLn2dTile], rstd[kLn2dTile];
  ln2d_tile_stats<X, Acc>(x, C, sx, n, eps, x0, dm, rstd);
  for (int64_t c = 0; c < C; ++c) {
    const Acc wc = sr_cast<Acc>(w[c]), bc = sr_cast<Acc>(b[c]);
    for (int64_t p = 0; p < n; ++p)
      y[c * sy + p] = sr_cast<T>(ln2d_dev(sr_cast<Acc>(x[c * sx + p]), x0[p], dm[p]) * rstd[p] * wc + bc);
  }
}

template <typename T, typename Acc>
SR_HOST_DEVICE void ln2d_tile_fwd(const T* x, const T* w, const T* b, T* y, int64_t C, int64_t s, int64_t n, Acc eps) {
  ln2d_tile_fwd_strided<T, T, Acc>(x, s, w, b, y, s, C, n, eps);
}

// dL/dx of the tile, and its pixels' contributions added to gw_acc / gb_acc (C each).
template <typename T, typename Acc>
SR_HOST_DEVICE void ln2d_tile_bwd(const T* g, const T* x, const T* w, T* gx, Acc* gw_acc, Acc* gb_acc, int64_t C,
                                  int64_t s, int64_t n, Acc eps) {
  Acc x0[kLn2dTile], dm[kLn2dTile], rstd[kLn2dTile], a[kLn2dTile], bb[kLn2dTile];
  ln2d_tile_stats<T, Acc>(x, C, s, n, eps, x0, dm, rstd);
  for (int64_t p = 0; p < n; ++p) a[p] = bb[p] = Acc(0);
  for (int64_t c = 0; c < C; ++c) {
    const Acc wc = sr_cast<Acc>(w[c]);
    Acc sgx = Acc(0), sg = Acc(0);
    for (int64_t p = 0; p < n; ++p) {
      const Acc gv = sr_cast<Acc>(g[c * s + p]);
      const Acc xhat = ln2d_dev(sr_cast<Acc>(x[c * s + p]), x0[p], dm[p]) * rstd[p];
      a[p] += gv * wc;
      bb[p] += gv * wc * xhat;
      sgx += gv * xhat;
      sg += gv;
    }
    gw_acc[c] += sgx;
    gb_acc[c] += sg;
  }
  for (int64_t p = 0; p < n; ++p) {
    a[p] /= Acc(C);
    bb[p] /= Acc(C);
  }
  for (int64_t c = 0; c < C; ++c) {
    const Acc wc = sr_cast<Acc>(w[c]);
    for (int64_t p = 0; p < n; ++p) {
      const Acc xhat = ln2d_dev(sr_cast<Acc>(x[c * s + p]), x0[p], dm[p]) * rstd[p];
      gx[c * s + p] = sr_cast<T>(rstd[p] * (sr_cast<Acc>(g[c * s + p]) * wc - a[p] - xhat * bb[p]));
    }
  }
}

}  // namespace sr
