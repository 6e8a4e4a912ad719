// Launchers for the cross_scale_knn CUDA kernels (see csrc/kernels/cross_scale_knn.h).
#pragma once

#include "cuda/launch.h"

namespace sr_cuda {

// Largest k the forward kernel keeps in registers.
constexpr int64_t kKnnMaxK = 32;

// query (B, C, H, W), key (B, C, Hk, Wk) contiguous, of `dtype`; dist (B, m, k) float32
// (float64 when dtype is float64); idx (B, m, k) int64. window <= 0: no window. The window
// rule: clamp(i // scale - window_offset, 0, n - w), window_offset < 0 meaning window // 2.
Status cross_scale_knn_fwd(const void* query, const void* key, void* dist, int64_t* idx, DType dtype, int64_t B,
                           int64_t C, int64_t H, int64_t W, int64_t Hk, int64_t Wk, int64_t k, int64_t P, int64_t T,
                           int64_t window, int64_t scale, int64_t window_offset, cudaStream_t stream);

}  // namespace sr_cuda
