// Launchers for the graph_aggregate CUDA kernels (see csrc/kernels/graph_aggregate.h).
#pragma once

#include "cuda/launch.h"

namespace sr_cuda {

struct GraphAggShape {
  int64_t B, C, H, W, k, Hk, Wk, scale, patch_size, stride;
};

// feat, query_feat (B, C, H, W), idx (B, m, k) int64, weights (B, k, sH, sW) or null, all
// contiguous of `dtype`; affine: workspace of B*m*k*C*sr::kAffineStride accumulation-type values (float32,
// float64 for float64); out: (B, C, sH, sW) with weights, else (B, k, C, sH, sW).
Status graph_aggregate_fwd(const void* feat, const int64_t* idx, const void* query_feat, const void* weights,
                           void* affine, void* out, DType dtype, GraphAggShape s, bool adapn, double eps,
                           cudaStream_t stream);

// grad: shaped like the forward's out. The inverse index of idx (csrc/cuda/inverse_index.h), in
// int32 (int64 when `wide`): start (B * n + 1) and entries (B * m * k, 4): (e, r, i, j) per
// entry in sorted order. Workspaces in the accumulation type: coef (B*m*k*C*sr::kCoefStride),
// qcoef (B*m*C*sr::kQueryCoefStride). Outputs of `dtype`, written in full: grad_feat, and
// grad_query_feat when adapn (zeroed by the caller), grad_weights when weighted.
Status graph_aggregate_bwd(const void* grad, const void* feat, const int64_t* idx, const void* query_feat,
                           const void* weights, const void* start, const void* entries, void* coef, void* qcoef,
                           void* grad_feat, void* grad_query_feat, void* grad_weights, DType dtype, GraphAggShape s,
                           bool adapn, double eps, bool wide, cudaStream_t stream);

}  // namespace sr_cuda
