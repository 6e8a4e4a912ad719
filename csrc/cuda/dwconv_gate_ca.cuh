// Launchers for the dwconv_gate_ca CUDA kernels (see csrc/kernels/dwconv_gate_ca.h).
#pragma once

#include "cuda/launch.h"

namespace sr_cuda {

// x contiguous (B, C, H, W); dw (C, k*k), db (C,), cw (C', C'), cb (C',); out (B, C', H, W);
// one dtype. workspace (dwconv_gate_ca_workspace_bytes): the accumulation type's (float, or
// double for float64) pooled map and attention scales, then the pooled sums' partials.
Status dwconv_gate_ca_fwd(const void* x, const void* dw, const void* db, const void* cw, const void* cb, void* out,
                          void* workspace, DType dtype, int64_t B, int64_t C, int64_t H, int64_t W, int64_t k,
                          bool gate, cudaStream_t stream);

// Gradients laid out like their inputs. workspace: 4 * B * C' accumulation-type values,
// B * C * H * W more for the gradient of the conv output, then the per-block partials.
Status dwconv_gate_ca_bwd(const void* grad_out, const void* x, const void* dw, const void* db, const void* cw,
                          const void* cb, void* dx, void* ddw, void* ddb, void* dcw, void* dcb, void* workspace,
                          DType dtype, int64_t B, int64_t C, int64_t H, int64_t W, int64_t k, bool gate,
                          cudaStream_t stream);

// Bytes of workspace the launchers above need.
int64_t dwconv_gate_ca_workspace_bytes(DType dtype, int64_t B, int64_t C, int64_t H, int64_t W, int64_t k, bool gate,
                                       bool backward);

}  // namespace sr_cuda
