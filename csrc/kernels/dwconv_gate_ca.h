// dwconv_gate_ca: depthwise k x k conv -> SimpleGate -> simplified channel attention,
// the middle of a NAFNet block. Shared by the CPU and CUDA kernels and the C++ tests.
//
// Layout: x (B, C, H, W) contiguous, dw weights (C, k*k), C' = C/2 with the gate (C
// without). A "group" is (b, c'): output channel c' of batch item b, fed by input
// channels c' and c' + C' (gate) or c' alone.
//
// Forward:
//   u_c  = bias_c + sum_{i,j} w_c[i,j] * x_c[h+i-p, w+j-p]     (zero outside, p = k/2)
//   y_c' = u_c' * u_{c'+C'}  (gate)  or  u_c'
//   s_c' = mean_hw(y_c'),  a_o = cb_o + sum_i cw[o,i] s_i,  out_o = y_o * a_o
// Pass 1 writes y and s per group; the tiny matvec gives a; pass 2 scales out by a.
//
// Backward, g = dL/dout:
//   ga_o = sum_hw g_o y_o;  gs_i = sum_o cw[o,i] ga_o;  dcw[o,i] = sum_b ga_o s_i;
//   dcb_o = sum_b ga_o;  gy_c' = g_c' a_c' + gs_c' / HW;
//   gu_c' = gy_c' u_{c'+C'}, gu_{c'+C'} = gy_c' u_c' (gate), or gu = gy;
//   dx_c[h,w] = sum_{i,j} w_c[i,j] gu_c[h-i+p, w-j+p];
//   dw_c[i,j] = sum_{b,h,w} gu_c[h,w] x_c[h+i-p, w+j-p];  db_c = sum_{b,h,w} gu_c.
#pragma once

#include <math.h>

#include "kernels/common.h"
#include "kernels/convert.h"

namespace sr {

struct DgcDims {
  int64_t B, C, H, W, k;
  bool gate;
};

SR_HOST_DEVICE int64_t dgc_out_channels(const DgcDims& d) { return d.gate ? d.C / 2 : d.C; }
SR_HOST_DEVICE int64_t dgc_groups(const DgcDims& d) { return d.B * dgc_out_channels(d); }
SR_HOST_DEVICE int64_t dgc_plane(const DgcDims& d) { return d.H * d.W; }

// The depthwise conv at one pixel of one plane (weights wk: k*k values).
template <typename T, typename Acc>
SR_HOST_DEVICE Acc dgc_conv_at(const T* x, const T* wk, Acc bias, int64_t H, int64_t W, int64_t k, int64_t h,
                               int64_t w) {
  const int64_t p = k / 2;
  Acc acc = bias;
  for (int64_t i = 0; i < k; ++i) {
    const int64_t hh = h + i - p;
    if (hh < 0 || hh >= H) continue;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t ww = w + j - p;
      if (ww < 0 || ww >= W) continue;
      acc += sr_cast<Acc>(wk[i * k + j]) * sr_cast<Acc>(x[hh * W + ww]);
    }
  }
  return acc;
}

// The transposed depthwise conv (the input gradient) at one pixel: gu read as Acc.
template <typename G, typename T, typename Acc>
SR_HOST_DEVICE Acc dgc_conv_t_at(const G* gu, const T* wk, int64_t H, int64_t W, int64_t k, int64_t h, int64_t w) {
  const int64_t p = k / 2;
  Acc acc = Acc(0);
  for (int64_t i = 0; i < k; ++i) {
    const int64_t hh = h - i + p;
    if (hh < 0 || hh >= H) continue;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t ww = w - j + p;
      if (ww < 0 || ww >= W) continue;
      acc += sr_cast<Acc>(wk[i * k + j]) * sr_cast<Acc>(gu[hh * W + ww]);
    }
  }
  return acc;
}

// One output row of the depthwise conv into row[0, W): rows of taps, each a
// vectorisable run over w with the borders clipped (the CPU kernel's inner loop).
template <typename T, typename Acc>
SR_HOST_DEVICE void dgc_conv_row(const T* x, const T* wk, Acc bias, int64_t H, int64_t W, int64_t k, int64_t h,
                                 Acc* row) {
  const int64_t p = k / 2;
  for (int64_t w = 0; w < W; ++w) row[w] = bias;
  for (int64_t i = 0; i < k; ++i) {
    const int64_t hh = h + i - p;
    if (hh < 0 || hh >= H) continue;
    const T* src = x + hh * W;
    for (int64_t j = 0; j < k; ++j) {
      const Acc wt = sr_cast<Acc>(wk[i * k + j]);
      const int64_t off = j - p;  // row[w] += wt * src[w + off]
      const int64_t lo = imax(0, -off), hi = imin(W, W - off);
      for (int64_t w = lo; w < hi; ++w) row[w] += wt * sr_cast<Acc>(src[w + off]);
    }
  }
}

// One row of the transposed conv: row[w] = sum_{i,j} wk[i,j] gu[h-i+p, w-j+p].
template <typename T, typename Acc>
SR_HOST_DEVICE void dgc_conv_t_row(const Acc* gu, const T* wk, int64_t H, int64_t W, int64_t k, int64_t h, Acc* row) {
  const int64_t p = k / 2;
  for (int64_t w = 0; w < W; ++w) row[w] = Acc(0);
  for (int64_t i = 0; i < k; ++i) {
    const int64_t hh = h - i + p;
    if (hh < 0 || hh >= H) continue;
    const Acc* src = gu + hh * W;
    for (int64_t j = 0; j < k; ++j) {
      const Acc wt = sr_cast<Acc>(wk[i * k + j]);
      const int64_t off = p - j;
      const int64_t lo = imax(0, -off), hi = imin(W, W - off);
      for (int64_t w = lo; w < hi; ++w) row[w] += wt * src[w + off];
    }
  }
}

// Accumulates the weight gradient of one plane: dw[i*k+j] += sum gu[h,w] x[h+i-p, w+j-p].
template <typename T, typename Acc>
SR_HOST_DEVICE void dgc_weight_grad(const Acc* gu, const T* x, int64_t H, int64_t W, int64_t k, Acc* dw) {
  const int64_t p = k / 2;
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t off = j - p;
      const int64_t lo = imax(0, -off), hi = imin(W, W - off);
      Acc acc = Acc(0);
      for (int64_t h = imax(0, p - i); h < imin(H, H + p - i); ++h) {
        const Acc* g = gu + h * W;
        const T* src = x + (h + i - p) * W;
        for (int64_t w = lo; w < hi; ++w) acc += g[w] * sr_cast<Acc>(src[w + off]);
      }
      dw[i * k + j] += acc;
    }
}

// Whether a tap of wk (k*k) other than the centre is inf or NaN. Such a tap meets the zero
// padding at some border pixel, where the reference's F.conv2d multiplies it by 0 (NaN):
// the kernels skip the padded taps, so they set the plane's mean to NaN instead, which
// makes every attention value, and so every output of the image, NaN, as in the reference.
template <typename T, typename Acc>
SR_HOST_DEVICE bool dgc_pads_nonfinite(const T* wk, int64_t k) {
  for (int64_t t = 0; t < k * k; ++t) {
    const Acc v = sr_cast<Acc>(wk[t]);
    if (t != (k * k) / 2 && !(v - v == Acc(0))) return true;  // v - v is NaN exactly for inf and NaN
  }
  return false;
}

// The mean of group c's gated map, NaN where a channel feeding it pads a non-finite tap.
template <typename T, typename Acc>
SR_HOST_DEVICE Acc dgc_mean(Acc total, const T* dw, const DgcDims& d, int64_t c) {
  const int64_t kk = d.k * d.k, Cg = dgc_out_channels(d);
  if (dgc_pads_nonfinite<T, Acc>(dw + c * kk, d.k) || (d.gate && dgc_pads_nonfinite<T, Acc>(dw + (c + Cg) * kk, d.k)))
    return Acc(NAN);
  return total / Acc(d.H * d.W);
}

// a[b, o] = cb[o] + sum_i cw[o, i] s[b, i]  (cw (C', C') row-major).
template <typename T, typename Acc>
SR_HOST_DEVICE Acc dgc_attention(const T* cw, const T* cb, const Acc* s_b, int64_t Cg, int64_t o) {
  Acc acc = sr_cast<Acc>(cb[o]);
  for (int64_t i = 0; i < Cg; ++i) acc += sr_cast<Acc>(cw[o * Cg + i]) * s_b[i];
  return acc;
}

// gs[b, i] = sum_o cw[o, i] ga[b, o].
template <typename T, typename Acc>
SR_HOST_DEVICE Acc dgc_pool_grad(const T* cw, const Acc* ga_b, int64_t Cg, int64_t i) {
  Acc acc = Acc(0);
  for (int64_t o = 0; o < Cg; ++o) acc += sr_cast<Acc>(cw[o * Cg + i]) * ga_b[o];
  return acc;
}

}  // namespace sr
