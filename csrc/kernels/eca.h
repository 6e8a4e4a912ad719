// eca: efficient channel attention (ECA-Net, RT4KSR), shared by the CPU and CUDA kernels.
//
// Layout: x, y, g (B, C, HW) contiguous; weight (k,), k odd, r = k / 2. Per image b:
//   s_c    = mean over the HW pixels of x_c                    (global average pool)
//   a_c    = sum_j w_j * s_{c + j - r}, zero outside [0, C)   (conv1d, padding r, no bias)
//   gate_c = sigmoid(a_c),   y_c = x_c * gate_c.
//
// Backward, with t_c = sum over the pixels of g_c * x_c:
//   da_c = t_c * gate_c * (1 - gate_c),
//   ds_c = sum_j w_j * da_{c - j + r}   (the transposed convolution),
//   dL/dx_c = g_c * gate_c + ds_c / HW,
//   dL/dw_j = sum over images and c of da_c * s_{c + j - r}.
// Three steps: per-plane sums (the only full reads), a tiny per-image step over the
// C channels, and the per-plane elementwise pass.
#pragma once

#include <math.h>

#include "kernels/common.h"
#include "kernels/convert.h"

namespace sr {

SR_HOST_DEVICE float eca_exp(float v) { return expf(v); }
SR_HOST_DEVICE double eca_exp(double v) { return exp(v); }

template <typename Acc>
SR_HOST_DEVICE Acc eca_sigmoid(Acc a) {
  return Acc(1) / (Acc(1) + eca_exp(-a));
}

// Plane sums in 4 interleaved partial sums (independent add chains).
template <typename T, typename Acc>
SR_HOST_DEVICE Acc eca_plane_sum(const T* x, int64_t n) {
  Acc p0 = Acc(0), p1 = Acc(0), p2 = Acc(0), p3 = Acc(0);
  int64_t e = 0;
  for (; e + 4 <= n; e += 4) {
    p0 += sr_cast<Acc>(x[e]);
    p1 += sr_cast<Acc>(x[e + 1]);
    p2 += sr_cast<Acc>(x[e + 2]);
    p3 += sr_cast<Acc>(x[e + 3]);
  }
  for (; e < n; ++e) p0 += sr_cast<Acc>(x[e]);
  return (p0 + p2) + (p1 + p3);
}

// sum of g * x over one plane.
template <typename T, typename Acc>
SR_HOST_DEVICE Acc eca_plane_dot(const T* g, const T* x, int64_t n) {
  Acc p0 = Acc(0), p1 = Acc(0), p2 = Acc(0), p3 = Acc(0);
  int64_t e = 0;
  for (; e + 4 <= n; e += 4) {
    p0 += sr_cast<Acc>(g[e]) * sr_cast<Acc>(x[e]);
    p1 += sr_cast<Acc>(g[e + 1]) * sr_cast<Acc>(x[e + 1]);
    p2 += sr_cast<Acc>(g[e + 2]) * sr_cast<Acc>(x[e + 2]);
    p3 += sr_cast<Acc>(g[e + 3]) * sr_cast<Acc>(x[e + 3]);
  }
  for (; e < n; ++e) p0 += sr_cast<Acc>(g[e]) * sr_cast<Acc>(x[e]);
  return (p0 + p2) + (p1 + p3);
}

// a_c: the zero-padded cross-correlation of s (C values) with w (k values) at c. The padded
// taps are multiplied by 0 rather than skipped, as the reference's F.conv1d does, so an inf
// or NaN weight makes a_c NaN at the border channels too (0 * inf); k per channel is cheap.
template <typename T, typename Acc>
SR_HOST_DEVICE Acc eca_logit(const Acc* s, const T* w, int64_t C, int64_t k, int64_t c) {
  const int64_t r = k / 2;
  Acc a = Acc(0);
  for (int64_t j = 0; j < k; ++j) {
    const int64_t src = c + j - r;
    a += sr_cast<Acc>(w[j]) * (src >= 0 && src < C ? s[src] : Acc(0));
  }
  return a;
}

// ds_c: the transposed convolution of da.
template <typename T, typename Acc>
SR_HOST_DEVICE Acc eca_grad_pooled(const Acc* da, const T* w, int64_t C, int64_t k, int64_t c) {
  const int64_t r = k / 2;
  Acc v = Acc(0);
  for (int64_t j = 0; j < k; ++j) {
    const int64_t dst = c - j + r;
    if (dst >= 0 && dst < C) v += sr_cast<Acc>(w[j]) * da[dst];
  }
  return v;
}

// One image's gates from its pooled means s (C each).
template <typename T, typename Acc>
SR_HOST_DEVICE void eca_image_gates(const Acc* s, const T* w, Acc* gate, int64_t C, int64_t k) {
  for (int64_t c = 0; c < C; ++c) gate[c] = eca_sigmoid(eca_logit<T, Acc>(s, w, C, k, c));
}

// One image's backward step. In: s (means), t (sums of g * x). Out: gate, and
// ds scaled by 1 / HW (the per-pixel addend of dL/dx); da is scratch (C values);
// the image's dL/dw added to gw (k values).
template <typename T, typename Acc>
SR_HOST_DEVICE void eca_image_bwd(const Acc* s, const Acc* t, const T* w, Acc* gate, Acc* da, Acc* ds_hw, Acc* gw,
                                  int64_t C, int64_t k, int64_t HW) {
  const int64_t r = k / 2;
  for (int64_t c = 0; c < C; ++c) {
    gate[c] = eca_sigmoid(eca_logit<T, Acc>(s, w, C, k, c));
    da[c] = t[c] * gate[c] * (Acc(1) - gate[c]);
  }
  for (int64_t c = 0; c < C; ++c) ds_hw[c] = eca_grad_pooled<T, Acc>(da, w, C, k, c) / Acc(HW);
  for (int64_t j = 0; j < k; ++j) {
    Acc v = Acc(0);
    for (int64_t c = 0; c < C; ++c) {
      const int64_t src = c + j - r;
      if (src >= 0 && src < C) v += da[c] * s[src];
    }
    gw[j] += v;
  }
}

}  // namespace sr
