// Launchers for gather_patches, and the crop / paste building blocks that
// extract_patches and merge_patches reuse (see csrc/kernels/gather_patches.h).
// coords (N, 3) and order (N,) are contiguous int64 on the device; window i is
// coords[order[i]] scaled by `scale`; images are contiguous (B, C, H, W).
#pragma once

#include "cuda/launch.h"

namespace sr_cuda {

// The paste's output tiles; the glue bins the windows by them (csrc/cuda/patch_tiles_glue.h).
constexpr int kPasteTileH = 16, kPasteTileW = 64;

// dst (N, C, Q, Q) = windows of src (B, C, H, W); divided by count (B, H, W) int32
// (each pixel's coverage) when count is not null.
Status crop_windows(const void* src, void* dst, DType dtype, const int64_t* coords, const int64_t* order,
                    const int32_t* count, int64_t N, int64_t B, int64_t C, int64_t H, int64_t W, int64_t Q,
                    int64_t scale, cudaStream_t stream);

// The binned windows of a paste: wy, wx (N,) int32 top-left pixels; tile t of the
// (B, tiles_y, tiles_x) kPasteTileH x kPasteTileW tiles holds win[start[t] : start[t + 1]],
// ascending sequence positions.
struct PasteIndex {
  const int32_t *wy, *wx, *start, *win;
  int64_t tiles_y, tiles_x;
};

// Output-stationary paste of the (N, C, Q, Q) src windows into dst (B, C, H, W) of dtype:
// each pixel the sum of the windows covering it in ascending sequence position (double for
// float/double, float for the half types), or with `mean` that sum / their count (0 where
// none lands). With src null, dst is instead the (B, H, W) int32 coverage count (C ignored).
Status paste_windows(const void* src, void* dst, DType dtype, const PasteIndex& index, int64_t N, int64_t B, int64_t C,
                     int64_t H, int64_t W, int64_t Q, bool mean, cudaStream_t stream);

}  // namespace sr_cuda
