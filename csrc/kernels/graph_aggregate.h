// graph_aggregate: IGNN's GraphAgg data path (vertex mapping + gather + AdaPN +
// patch2img) as shared per-element math for the CPU and CUDA kernels.
//
// Neighbour r of query q = (i, j) is the (s*p)^2 region of feat at
// (s*t*a, s*t*b), (a, b) = key patch idx[q, r]. AdaPN maps its values z to
// (z - shift) * alpha + beta with alpha = sqrt(var_q + eps) / sqrt(var_z + eps),
// shift = the region's first value and beta = mean_q - (mean_z - shift) * alpha (per
// channel, unbiased variances), so once the small (B, m, k, C) table of
// (alpha, beta, shift) exists, every output pixel is a gather. The shift keeps the
// digits when |mean_z| >> std_z: z * alpha + (mean_q - mean_z * alpha) cancels
// |mean_z| * alpha * ulp (float32 at mean 1e4: 1e-3 * alpha, and alpha is large when a
// region is nearly flat), (z - shift) is exact near the region's values.
//
// A region may overhang feat's bottom/right border (IGNN x3 when the LR side is 1 mod 6:
// the official code zero-pads the map the regions come from); the overhang reads as 0 in
// the statistics and the values, and takes no gradient. Every region starts inside feat.
#pragma once

#include <math.h>

#include "kernels/common.h"
#include "kernels/convert.h"

namespace sr {

struct GraphAggDims {
  int64_t B, C, H, W;  // feat / query_feat
  int64_t k, S, p, t;  // neighbours, scale, LR patch and stride
  int64_t m1, m2, n2;  // query grid, key grid width
  int64_t P, T;        // HR patch s*p and stride s*t
  int64_t HH, WW;      // HR output s*H, s*W
};

SR_HOST_DEVICE GraphAggDims graph_agg_dims(int64_t B, int64_t C, int64_t H, int64_t W, int64_t k, int64_t Wk, int64_t S,
                                           int64_t p, int64_t t) {
  GraphAggDims d;
  d.B = B;
  d.C = C;
  d.H = H;
  d.W = W;
  d.k = k;
  d.S = S;
  d.p = p;
  d.t = t;
  d.m1 = grid_len(H, p, t);
  d.m2 = grid_len(W, p, t);
  d.n2 = grid_len(Wk, p, t);
  d.P = S * p;
  d.T = S * t;
  d.HH = S * H;
  d.WW = S * W;
  return d;
}

// Top-left pixel in feat of the region of key patch number n (vertex mapping).
SR_HOST_DEVICE void region_origin(const GraphAggDims& d, int64_t n, int64_t* y, int64_t* x) {
  *y = d.T * (n / d.n2);
  *x = d.T * (n % d.n2);
}

// Whether every region of a key map with Hk rows starts inside feat (the op's contract).
SR_HOST_DEVICE bool regions_start_inside(const GraphAggDims& d, int64_t Hk) {
  return d.T * (grid_len(Hk, d.p, d.t) - 1) < d.H && d.T * (d.n2 - 1) < d.W;
}

// Value of feat's plane at (y, x), 0 past the bottom/right border (y, x >= 0 always).
template <typename T, typename Acc>
SR_HOST_DEVICE Acc region_value(const T* plane, const GraphAggDims& d, int64_t y, int64_t x) {
  return (y < d.H && x < d.W) ? sr_cast<Acc>(plane[y * d.W + x]) : Acc(0);
}

// Coverage of HR pixel (Y, X) by the HR patch grid (patch P, stride T, m1 x m2).
SR_HOST_DEVICE int64_t hr_count(const GraphAggDims& d, int64_t Y, int64_t X) {
  return cover_count(Y, d.P, d.T, d.m1) * cover_count(X, d.P, d.T, d.m2);
}

// Upstream gradient of neighbour r's normalised value at HR pixel (Y, X), before the
// division by the coverage: grad (B, C, HH, WW) times weights (B, k, HH, WW) when
// weighted, else grad (B, k, C, HH, WW).
template <typename T, typename Acc>
SR_HOST_DEVICE Acc upstream_grad(const T* grad, const T* weights, const GraphAggDims& d, int64_t b, int64_t r,
                                 int64_t c, int64_t Y, int64_t X) {
  if (weights != nullptr)
    return sr_cast<Acc>(grad[((b * d.C + c) * d.HH + Y) * d.WW + X]) *
           sr_cast<Acc>(weights[((b * d.k + r) * d.HH + Y) * d.WW + X]);
  return sr_cast<Acc>(grad[(((b * d.k + r) * d.C + c) * d.HH + Y) * d.WW + X]);
}

// Table strides: the forward's (alpha, beta, shift); the backward's (alpha, beta, c1, c2,
// shift) per (b, q, r, c); the backward's query terms (mean coef, var coef, shift_q,
// dmean_q) per (b, q, c).
constexpr int kAffineStride = 3, kCoefStride = 5, kQueryCoefStride = 4;

// Statistics of an n x n window at (y, x) of one h x w channel plane, reading 0 past its
// bottom/right border, about its first value: mean = shift + dmean (see AdaPN above),
// unbiased variance. The (n*n - inside) zeros add -shift each to the sum and
// (shift + dmean)^2 each to the squared deviations. (y, x) lies inside the plane.
template <typename T, typename Acc>
SR_HOST_DEVICE void window_stats(const T* plane, int64_t h, int64_t w, int64_t y, int64_t x, int64_t n, Acc* shift,
                                 Acc* dmean, Acc* var) {
  const int64_t nu = h - y < n ? h - y : n, nv = w - x < n ? w - x : n, outside = n * n - nu * nv;
  const Acc x0 = sr_cast<Acc>(plane[y * w + x]);
  Acc s = Acc(0);
  for (int64_t u = 0; u < nu; ++u)
    for (int64_t v = 0; v < nv; ++v) s += sr_cast<Acc>(plane[(y + u) * w + x + v]) - x0;
  if (outside > 0) s -= Acc(outside) * x0;
  const Acc dm = s / Acc(n * n);
  Acc ss = Acc(0);
  if (outside > 0) ss = Acc(outside) * (x0 + dm) * (x0 + dm);
  for (int64_t u = 0; u < nu; ++u)
    for (int64_t v = 0; v < nv; ++v) {
      const Acc dv = (sr_cast<Acc>(plane[(y + u) * w + x + v]) - x0) - dm;
      ss += dv * dv;
    }
  *shift = x0;
  *dmean = dm;
  *var = ss / Acc(n * n - 1);
}

template <typename Acc>
SR_HOST_DEVICE Acc acc_sqrt(Acc v) {
  return sqrt(v);
}

// (alpha, beta) of AdaPN for one (query, neighbour, channel), beta relative to the
// region's shift: the value is (z - shift_z) * alpha + beta.
template <typename Acc>
SR_HOST_DEVICE void adapn_affine(Acc dmean_z, Acc var_z, Acc mean_q, Acc var_q, Acc eps, Acc* alpha, Acc* beta) {
  *alpha = acc_sqrt(var_q + eps) / acc_sqrt(var_z + eps);
  *beta = mean_q - dmean_z * (*alpha);
}

// Backward of z -> (z - shift_z) * alpha + beta through the statistics. Given
// d_alpha = sum(g * (z - shift_z)) and d_beta = sum(g) over the region (g: gradient of
// the normalised values), the region's gradient is g * alpha + c1 + c2 * (z - shift_z),
// and the query patch's is q_mean_coef + q_var_coef * (q - mean_q). Everything about
// the shifts, so no term carries |mean_z|. Nz, Nq: values per region / patch.
template <typename Acc>
struct AdapnGrad {
  Acc c1, c2, q_mean_coef, q_var_coef;
};

template <typename Acc>
SR_HOST_DEVICE AdapnGrad<Acc> adapn_grad(Acc dmean_z, Acc var_z, Acc var_q, Acc eps, Acc alpha, Acc d_alpha, Acc d_beta,
                                         int64_t Nz, int64_t Nq) {
  const Acc sz = acc_sqrt(var_z + eps), sq = acc_sqrt(var_q + eps);
  const Acc da = d_alpha - dmean_z * d_beta;  // sum(g * (z - mean_z))
  const Acc d_var_z = -da * sq / (sz * sz) / (Acc(2) * sz);
  const Acc d_mean_z = -alpha * d_beta;
  const Acc d_var_q = da / sz / (Acc(2) * sq);
  AdapnGrad<Acc> g;
  g.c2 = Acc(2) * d_var_z / Acc(Nz - 1);
  g.c1 = d_mean_z / Acc(Nz) - g.c2 * dmean_z;
  g.q_mean_coef = d_beta / Acc(Nq);
  g.q_var_coef = Acc(2) * d_var_q / Acc(Nq - 1);
  return g;
}

}  // namespace sr
