// Launchers for the eca CUDA kernels (see csrc/kernels/eca.h).
#pragma once

#include "cuda/launch.h"

namespace sr_cuda {

// Accumulator values (double for float64, float otherwise) each launcher needs in its
// workspace.
// workspace: the pooled values and gates, then the pooled sums' per-block partials.
int64_t eca_fwd_workspace(int64_t B, int64_t C, int64_t HW);
int64_t eca_bwd_workspace(int64_t B, int64_t C, int64_t HW, int64_t k);

// x / y: contiguous (B, C, HW), HW >= 1; weight (k,), k odd; one dtype.
Status eca_fwd(const void* x, const void* weight, void* y, void* workspace, DType dtype, int64_t B, int64_t C,
               int64_t HW, int64_t k, cudaStream_t stream);

// grad_out / grad_x laid out like x; grad_weight (k,).
Status eca_bwd(const void* grad_out, const void* x, const void* weight, void* grad_x, void* grad_weight,
               void* workspace, DType dtype, int64_t B, int64_t C, int64_t HW, int64_t k, cudaStream_t stream);

}  // namespace sr_cuda
