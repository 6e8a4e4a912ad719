// Launchers for the merge_patches CUDA kernels (built from gather_patches.cuh's blocks).
#pragma once

#include "cuda/launch.h"

namespace sr_cuda {

// outputs (N, C, Q, Q), Q = scale*P -> out (B, C, HH, WW) with HH = scale*H. acc_ws: a
// zero-filled (B, C, HH, WW) double (float for the half types) scratch; count_ws: a
// zero-filled (B, HH, WW) int32 scratch.
Status merge_patches_fwd(const void* outputs, void* out, void* acc_ws, int32_t* count_ws, DType dtype,
                         const int64_t* coords, const int64_t* order, int64_t N, int64_t B, int64_t C, int64_t HH,
                         int64_t WW, int64_t Q, int64_t scale, cudaStream_t stream);

// grad (B, C, HH, WW) -> grad_outputs (N, C, Q, Q); count_ws as above.
Status merge_patches_bwd(const void* grad, void* grad_outputs, int32_t* count_ws, DType dtype, const int64_t* coords,
                         const int64_t* order, int64_t N, int64_t B, int64_t C, int64_t HH, int64_t WW, int64_t Q,
                         int64_t scale, cudaStream_t stream);

}  // namespace sr_cuda
