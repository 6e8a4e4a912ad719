// Launcher for the extract_patches CUDA kernels (see csrc/kernels/extract_patches.h).
#pragma once

#include "cuda/launch.h"

namespace sr_cuda {

// img contiguous (B, C, H, W) -> patches (N, C, P, P), coords (N, 3) int64; order_ws is
// an (N,) int64 scratch buffer (filled with the identity order the crop reads through).
Status extract_patches_fwd(const void* img, void* patches, int64_t* coords, int64_t* order_ws, DType dtype, int64_t B,
                           int64_t C, int64_t H, int64_t W, int64_t P, int64_t stride, cudaStream_t stream);

}  // namespace sr_cuda
