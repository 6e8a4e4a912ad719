// patch2img: fold (B, L, C, P, P) patches on an m1 x m2 grid (stride T) into
// (B, C, H, W), averaging overlaps. Output-stationary: each output pixel gathers
// the patches that cover it, so the forward needs no atomics and the backward is
// a pure gather too (deterministic on every backend).
#pragma once

#include "kernels/common.h"
#include "kernels/convert.h"

namespace sr {

struct Patch2ImgDims {
  int64_t B, L, C, P, H, W, T, m1, m2;
};

SR_HOST_DEVICE Patch2ImgDims patch2img_dims(int64_t B, int64_t C, int64_t H, int64_t W, int64_t P, int64_t T) {
  Patch2ImgDims d;
  d.B = B;
  d.C = C;
  d.H = H;
  d.W = W;
  d.P = P;
  d.T = T;
  d.m1 = grid_len(H, P, T);
  d.m2 = grid_len(W, P, T);
  d.L = d.m1 * d.m2;
  return d;
}

// Offset of patches[b, l, c, py, px] in a contiguous (B, L, C, P, P) buffer.
SR_HOST_DEVICE int64_t patch_offset(const Patch2ImgDims& d, int64_t b, int64_t l, int64_t c, int64_t py, int64_t px) {
  return (((b * d.L + l) * d.C + c) * d.P + py) * d.P + px;
}

// Value of out[b, c, y, x]: mean over the covering patches (0 if none).
template <typename T, typename Acc>
SR_HOST_DEVICE T patch2img_pixel(const T* patches, const Patch2ImgDims& d, int64_t b, int64_t c, int64_t y, int64_t x) {
  int64_t i0, i1, j0, j1;
  cover_range(y, d.P, d.T, d.m1, &i0, &i1);
  cover_range(x, d.P, d.T, d.m2, &j0, &j1);
  if (i1 < i0 || j1 < j0) return sr_cast<T>(0);
  Acc sum = Acc(0);
  for (int64_t i = i0; i <= i1; ++i) {
    for (int64_t j = j0; j <= j1; ++j) {
      sum += sr_cast<Acc>(patches[patch_offset(d, b, i * d.m2 + j, c, y - d.T * i, x - d.T * j)]);
    }
  }
  const Acc n = Acc((i1 - i0 + 1) * (j1 - j0 + 1));
  return sr_cast<T>(sum / n);
}

// Value of grad_patches[b, l, c, py, px] given grad_out (B, C, H, W), contiguous:
// the output pixel this patch element landed on, divided by that pixel's coverage.
template <typename T, typename Acc>
SR_HOST_DEVICE T patch2img_grad_element(const T* grad_out, const Patch2ImgDims& d, int64_t b, int64_t l, int64_t c,
                                        int64_t py, int64_t px) {
  const int64_t y = d.T * (l / d.m2) + py;
  const int64_t x = d.T * (l % d.m2) + px;
  const Acc n = Acc(cover_count(y, d.P, d.T, d.m1) * cover_count(x, d.P, d.T, d.m2));
  return sr_cast<T>(sr_cast<Acc>(grad_out[((b * d.C + c) * d.H + y) * d.W + x]) / n);
}

}  // namespace sr
