// Launchers for the merge_patches CUDA kernels (built from gather_patches.cuh's blocks).
#pragma once

#include "cuda/gather_patches.cuh"

namespace sr_cuda {

// outputs (N, C, Q, Q), Q = scale*P -> out (B, C, HH, WW) with HH = scale*H: each pixel the
// mean of the outputs covering it (0 where none), through the binned windows `index`.
Status merge_patches_fwd(const void* outputs, void* out, DType dtype, const PasteIndex& index, int64_t N, int64_t B,
                         int64_t C, int64_t HH, int64_t WW, int64_t Q, cudaStream_t stream);

// grad (B, C, HH, WW) -> grad_outputs (N, C, Q, Q), each crop divided by the coverage;
// count_ws: a (B, HH, WW) int32 scratch (filled here, from `index`).
Status merge_patches_bwd(const void* grad, void* grad_outputs, int32_t* count_ws, DType dtype, const int64_t* coords,
                         const int64_t* order, const PasteIndex& index, int64_t N, int64_t B, int64_t C, int64_t HH,
                         int64_t WW, int64_t Q, int64_t scale, cudaStream_t stream);

}  // namespace sr_cuda
