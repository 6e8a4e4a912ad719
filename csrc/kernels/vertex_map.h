// vertex_map: key-patch number -> top-left pixel, in the full-resolution map, of the
// (scale*p) x (scale*p) region the key patch covers once scaled up. Pure index
// arithmetic, written once here for the CPU and CUDA kernels.
#pragma once

#include "kernels/common.h"

namespace sr {

struct VertexMapDims {
  int64_t n1, n2;  // key patch grid of the (Hk, Wk) key map
  int64_t step;    // scale * stride: one key-grid step in full-resolution pixels
};

SR_HOST_DEVICE VertexMapDims vertex_map_dims(int64_t Hk, int64_t Wk, int64_t scale, int64_t P, int64_t T) {
  VertexMapDims d;
  d.n1 = grid_len(Hk, P, T);
  d.n2 = grid_len(Wk, P, T);
  d.step = scale * T;
  return d;
}

SR_HOST_DEVICE bool vertex_in_range(const VertexMapDims& d, int64_t idx) { return idx >= 0 && idx < d.n1 * d.n2; }

// Callers validate the range first: an out-of-range idx still maps to *some* pixel, so
// the arithmetic alone cannot flag it.
SR_HOST_DEVICE void vertex_of(const VertexMapDims& d, int64_t idx, int64_t* row, int64_t* col) {
  *row = d.step * (idx / d.n2);
  *col = d.step * (idx % d.n2);
}

}  // namespace sr
