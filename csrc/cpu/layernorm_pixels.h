// One LayerNorm over the C contiguous channels of each of n pixels (channels-last maps):
// y[p, c] = (x[p, c] - mean_p) * rstd_p * w[c] + b[c], two-pass variance from sums shifted by
// the pixel's first value (csrc/kernels/layernorm2d.h, ln2d_pixel_stats). Defined in
// layernorm2d.cpp (AVX2 clone); layernorm2d's and naf_ffn's channels-last paths call it.
#pragma once

#include <cstdint>

namespace sr_cpu {

void layernorm_pixels_f32(const float* x, const float* w, const float* b, float* y, int64_t n, int64_t C, float eps);

}  // namespace sr_cpu
