// gather_patches: out[i] = img[b, :, r:r+P, c:c+P] with (b, r, c) = coords[order[i]].
// The window of sequence position i is looked up through `order`, so a dispatch order
// crops each class's patches contiguously without first materialising all N patches.
// The same window arithmetic, with a scale, serves merge_patches (HR corner = s*corner).
#pragma once

#include "kernels/common.h"

namespace sr {

struct Window {
  int64_t b, y, x;  // batch and top-left pixel, already multiplied by the scale
};

// coords (N, 3) and order (N,) contiguous int64.
SR_HOST_DEVICE Window window_of(const int64_t* coords, const int64_t* order, int64_t i, int64_t scale) {
  const int64_t* c = coords + 3 * order[i];
  Window w;
  w.b = c[0];
  w.y = scale * c[1];
  w.x = scale * c[2];
  return w;
}

// Offset of x[b, c, y, x] in a contiguous (B, C, H, W) buffer.
SR_HOST_DEVICE int64_t nchw_offset(int64_t C, int64_t H, int64_t W, int64_t b, int64_t c, int64_t y, int64_t x) {
  return ((b * C + c) * H + y) * W + x;
}

// Image offset of patch element (i, c, py, px) of a (N, C, Q, Q) crop of (B, C, H, W).
SR_HOST_DEVICE int64_t crop_source(const int64_t* coords, const int64_t* order, int64_t scale, int64_t C, int64_t H,
                                   int64_t W, int64_t Q, int64_t flat) {
  const int64_t px = flat % Q, py = (flat / Q) % Q, c = (flat / (Q * Q)) % C, i = flat / (Q * Q * C);
  const Window w = window_of(coords, order, i, scale);
  return nchw_offset(C, H, W, w.b, c, w.y + py, w.x + px);
}

}  // namespace sr
