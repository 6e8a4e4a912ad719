// extract_patches: the corners of a patch grid that covers a whole (H, W) image.
// Along an axis of length n the corners are 0, t, 2t, ... and, when that grid stops
// short of the border, one more at n - P, so the last patch ends exactly at the border.
#pragma once

#include "kernels/common.h"

namespace sr {

// Corners along one axis (P <= n).
SR_HOST_DEVICE int64_t cover_grid_len(int64_t n, int64_t p, int64_t t) {
  const int64_t m = (n - p) / t + 1;
  return (n - p) % t == 0 ? m : m + 1;
}

// Corner k of that axis: t*k, clamped to the last valid corner n - P.
SR_HOST_DEVICE int64_t cover_grid_pos(int64_t k, int64_t n, int64_t p, int64_t t) { return imin(t * k, n - p); }

struct ExtractDims {
  int64_t B, H, W, P, T, m1, m2, N;
};

SR_HOST_DEVICE ExtractDims extract_dims(int64_t B, int64_t H, int64_t W, int64_t P, int64_t T) {
  ExtractDims d;
  d.B = B;
  d.H = H;
  d.W = W;
  d.P = P;
  d.T = T;
  d.m1 = cover_grid_len(H, P, T);
  d.m2 = cover_grid_len(W, P, T);
  d.N = B * d.m1 * d.m2;
  return d;
}

// (batch, row, col) of patch q: batch-major, then row, then col.
SR_HOST_DEVICE void extract_corner(const ExtractDims& d, int64_t q, int64_t* b, int64_t* r, int64_t* c) {
  const int64_t per_image = d.m1 * d.m2;
  *b = q / per_image;
  const int64_t k = q % per_image;
  *r = cover_grid_pos(k / d.m2, d.H, d.P, d.T);
  *c = cover_grid_pos(k % d.m2, d.W, d.P, d.T);
}

}  // namespace sr
