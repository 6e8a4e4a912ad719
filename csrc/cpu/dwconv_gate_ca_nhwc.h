// The channels-last CPU forward of dwconv_gate_ca (x stored (B, H, W, C)), included by
// dwconv_gate_ca.cpp. NAFNet's 1x1 convolutions run ~3x faster on channels-last maps in
// oneDNN, so the block stays channels-last on the CPU; this path reads such an x in place
// instead of copying it to NCHW first (a copy that cost four times the kernel).
//
// OpenMP over (image, row) jobs. A job convolves one output row, eight channels (and their
// gate partners) at a time in registers over the k*k taps (a pixel's channels are
// contiguous, so the loads vectorise), gates them, writes the (W, C') row, and keeps that
// row's per-channel sums; the pooled means then add the rows
// up in row order, so the result does not depend on the thread count.
#pragma once

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>

#include <type_traits>
#include <vector>

#include "cpu/clones.h"
#include "cpu/dispatch.h"
#include "cpu/simd.h"
#include "kernels/dwconv_gate_ca.h"

namespace sr_dgc_nhwc {

// Output row h of image b: the depthwise conv of each pixel, kV channels at a time (with
// their gate partners when Gate), summed in registers over the taps, gated, written to the
// (W, C') row orow, and added to the row's per-channel sums. wt (k*k, C) holds the weights
// transposed so that one tap's channels are contiguous; bias (C,).
template <bool Gate, typename T, typename Acc>
SR_CPU_CLONES void gate_row(const T* x, const Acc* wt, const Acc* bias, const sr::DgcDims& d, int64_t b, int64_t h,
                            T* orow, Acc* sums) {
  constexpr int64_t kV = 8;
  const int64_t C = d.C, Cg = sr::dgc_out_channels(d), k = d.k, p = k / 2;
  const int64_t i0 = std::max<int64_t>(0, p - h), i1 = std::min<int64_t>(k, d.H + p - h);
  const T* img = x + b * d.H * d.W * C;
  for (int64_t w = 0; w < d.W; ++w) {
    const int64_t j0 = std::max<int64_t>(0, p - w), j1 = std::min<int64_t>(k, d.W + p - w);
    for (int64_t c0 = 0; c0 < Cg; c0 += kV) {
      const int64_t nc = std::min(kV, Cg - c0);
      Acc u1[kV] = {}, u2[kV] = {};
      for (int64_t l = 0; l < nc; ++l) {
        u1[l] = bias[c0 + l];
        if constexpr (Gate) u2[l] = bias[Cg + c0 + l];
      }
      for (int64_t i = i0; i < i1; ++i) {
        const T* xrow = img + (h + i - p) * d.W * C;
        for (int64_t j = j0; j < j1; ++j) {
          const T* src = xrow + (w + j - p) * C + c0;
          const Acc* wk = wt + (i * k + j) * C + c0;
          for (int64_t l = 0; l < nc; ++l) u1[l] += wk[l] * Acc(src[l]);
          if constexpr (Gate)
            for (int64_t l = 0; l < nc; ++l) u2[l] += wk[Cg + l] * Acc(src[Cg + l]);
        }
      }
      T* o = orow + w * Cg + c0;
      for (int64_t l = 0; l < nc; ++l) {
        const Acc y = Gate ? u1[l] * u2[l] : u1[l];
        o[l] = T(y);
        sums[c0 + l] += y;
      }
    }
  }
}

// gate_row for float with C' a multiple of 8: the eight channels in one f32x8 register
// each (GCC kept the generic form's fixed-length arrays in memory: 1.6x slower than the
// row-buffer kernel it replaced).
template <bool Gate>
SR_CPU_CLONES void gate_row_f32(const float* x, const float* wt, const float* bias, const sr::DgcDims& d, int64_t b,
                                int64_t h, float* orow, float* sums) {
  using sr_simd::f32x8;
  using sr_simd::load8;
  const int64_t C = d.C, Cg = sr::dgc_out_channels(d), k = d.k, p = k / 2;
  const int64_t i0 = std::max<int64_t>(0, p - h), i1 = std::min<int64_t>(k, d.H + p - h);
  const float* img = x + b * d.H * d.W * C;
  for (int64_t w = 0; w < d.W; ++w) {
    const int64_t j0 = std::max<int64_t>(0, p - w), j1 = std::min<int64_t>(k, d.W + p - w);
    for (int64_t c0 = 0; c0 < Cg; c0 += 8) {
      f32x8 u1 = load8(bias + c0), u2{};
      if constexpr (Gate) u2 = load8(bias + Cg + c0);
      for (int64_t i = i0; i < i1; ++i) {
        const float* xrow = img + (h + i - p) * d.W * C + c0;
        for (int64_t j = j0; j < j1; ++j) {
          const float* src = xrow + (w + j - p) * C;
          const float* wk = wt + (i * k + j) * C + c0;
          u1 += load8(wk) * load8(src);
          if constexpr (Gate) u2 += load8(wk + Cg) * load8(src + Cg);
        }
      }
      const f32x8 y = Gate ? u1 * u2 : u1;
      sr_simd::store8(orow + w * Cg + c0, y);
      sr_simd::store8(sums + c0, load8(sums + c0) + y);
    }
  }
}

// out (B, H, W, C') in memory; x likewise with C channels.
template <typename T>
void forward(const T* x, const T* dw, const T* db, const T* cw, const T* cb, T* out, const sr::DgcDims d) {
  using Acc = at::opmath_type<T>;
  const int64_t C = d.C, Cg = sr::dgc_out_channels(d), kk = d.k * d.k, rows = d.B * d.H;
  std::vector<Acc> wt(kk * C), bias(C), row_sums(rows * Cg, Acc(0)), a(d.B * Cg);
  for (int64_t c = 0; c < C; ++c) {
    bias[c] = Acc(db[c]);
    for (int64_t t = 0; t < kk; ++t) wt[t * C + c] = Acc(dw[c * kk + t]);
  }
  const bool par = sr_cpu::worth_threads(d.B * C * sr::dgc_plane(d));
#pragma omp parallel if (par)
  {
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      T* orow = out + r * d.W * Cg;
      Acc* sums = row_sums.data() + r * Cg;
      if constexpr (std::is_same_v<T, float>) {
        if (Cg % 8 == 0) {
          if (d.gate) {
            gate_row_f32<true>(x, wt.data(), bias.data(), d, r / d.H, r % d.H, orow, sums);
          } else {
            gate_row_f32<false>(x, wt.data(), bias.data(), d, r / d.H, r % d.H, orow, sums);
          }
          continue;
        }
      }
      if (d.gate) {
        gate_row<true, T, Acc>(x, wt.data(), bias.data(), d, r / d.H, r % d.H, orow, sums);
      } else {
        gate_row<false, T, Acc>(x, wt.data(), bias.data(), d, r / d.H, r % d.H, orow, sums);
      }
    }
#pragma omp single
    {
      std::vector<Acc> mean(Cg);
      for (int64_t b = 0; b < d.B; ++b) {
        for (int64_t c = 0; c < Cg; ++c) mean[c] = Acc(0);
        for (int64_t h = 0; h < d.H; ++h)
          for (int64_t c = 0; c < Cg; ++c) mean[c] += row_sums[(b * d.H + h) * Cg + c];
        for (int64_t c = 0; c < Cg; ++c) mean[c] = sr::dgc_mean<T, Acc>(mean[c], dw, d, c);
        for (int64_t c = 0; c < Cg; ++c) a[b * Cg + c] = sr::dgc_attention<T, Acc>(cw, cb, mean.data(), Cg, c);
      }
    }
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const Acc* ab = a.data() + (r / d.H) * Cg;
      T* orow = out + r * d.W * Cg;
      for (int64_t w = 0; w < d.W; ++w)
        for (int64_t c = 0; c < Cg; ++c) orow[w * Cg + c] = T(Acc(orow[w * Cg + c]) * ab[c]);
    }
  }
}

}  // namespace sr_dgc_nhwc
