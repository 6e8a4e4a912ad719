// Launchers for gather_patches, and the crop / paste building blocks that
// extract_patches and merge_patches reuse (see csrc/kernels/gather_patches.h).
// coords (N, 3) and order (N,) are contiguous int64 on the device; window i is
// coords[order[i]] scaled by `scale`; images are contiguous (B, C, H, W).
#pragma once

#include "cuda/launch.h"

namespace sr_cuda {

// dst (N, C, Q, Q) = windows of src (B, C, H, W); divided by count (B, H, W) int32
// (each pixel's coverage) when count is not null.
Status crop_windows(const void* src, void* dst, DType dtype, const int64_t* coords, const int64_t* order,
                    const int32_t* count, int64_t N, int64_t C, int64_t H, int64_t W, int64_t Q, int64_t scale,
                    cudaStream_t stream);

// acc (B, C, H, W), zero-filled, double (float for the half types) += the (N, C, Q, Q) src
// windows (atomic adds: windows may overlap anywhere).
Status paste_windows(const void* src, void* acc, DType dtype, const int64_t* coords, const int64_t* order, int64_t N,
                     int64_t C, int64_t H, int64_t W, int64_t Q, int64_t scale, cudaStream_t stream);

// count (B, H, W) int32, zero-filled, += 1 under every Q x Q window.
Status window_coverage(int32_t* count, const int64_t* coords, const int64_t* order, int64_t N, int64_t H, int64_t W,
                       int64_t Q, int64_t scale, cudaStream_t stream);

// dst (B, C, H, W) in dtype = acc, or acc / count (0 where count is 0) when count is not null.
Status finish_paste(const void* acc, const int32_t* count, void* dst, DType dtype, int64_t B, int64_t C, int64_t H,
                    int64_t W, cudaStream_t stream);

}  // namespace sr_cuda
