// Launchers for the patch2img CUDA kernels (see csrc/kernels/patch2img.h).
#pragma once

#include "cuda/launch.h"

namespace sr_cuda {

// patches: contiguous (B, L, C, P, P); out: contiguous (B, C, H, W).
Status patch2img_fwd(const void* patches, void* out, DType dtype, int64_t B, int64_t C, int64_t H, int64_t W, int64_t P,
                     int64_t stride, cudaStream_t stream);

// grad_out: contiguous (B, C, H, W); grad_patches: contiguous (B, L, C, P, P).
Status patch2img_bwd(const void* grad_out, void* grad_patches, DType dtype, int64_t B, int64_t C, int64_t H, int64_t W,
                     int64_t P, int64_t stride, cudaStream_t stream);

}  // namespace sr_cuda
