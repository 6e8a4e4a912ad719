// Launchers for the layernorm2d CUDA kernels (see csrc/kernels/layernorm2d.h).
#pragma once

#include "cuda/launch.h"

namespace sr_cuda {

// x / y: contiguous (B, C, HW); weight, bias: (C,); one dtype.
Status layernorm2d_fwd(const void* x, const void* weight, const void* bias, void* y, DType dtype, int64_t B, int64_t C,
                       int64_t HW, double eps, cudaStream_t stream);

// layernorm2d(gelu(x)), exact (erf) GELU or its tanh form; layouts as layernorm2d_fwd.
Status gelu_layernorm2d_fwd(const void* x, const void* weight, const void* bias, void* y, DType dtype, int64_t B,
                            int64_t C, int64_t HW, double eps, bool tanh_approx, cudaStream_t stream);

// grad_out / grad_x laid out like x; grad_weight, grad_bias (C,). workspace:
// layernorm2d_bwd_workspace(B, C, HW) accumulator values (double for float64, float
// otherwise): the per-pixel mean and rstd, then the weight gradients' per-block partials.
Status layernorm2d_bwd(const void* grad_out, const void* x, const void* weight, void* grad_x, void* grad_weight,
                       void* grad_bias, void* workspace, DType dtype, int64_t B, int64_t C, int64_t HW, double eps,
                       cudaStream_t stream);

int64_t layernorm2d_bwd_workspace(int64_t B, int64_t C, int64_t HW);

}  // namespace sr_cuda
