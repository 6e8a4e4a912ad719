// Launcher for the deterministic cross_scale_knn backward (no float atomics; see the .cu).
#pragma once

#include "cuda/launch.h"

namespace sr_cuda {

struct KnnGradShape {
  int64_t B, C, H, W, Hk, Wk, k, P, T;
};

// query (B, C, H, W), key (B, C, Hk, Wk) contiguous of `dtype`; grad (B, m, k) in the
// accumulation type (float32, float64 for float64). Index arrays, int32 (int64 when `wide`):
// kbase (B, m, k): the offset in a key plane of idx's patch, T * (idx / n2) * Wk + T * (idx % n2);
// start (B * n + 1): key patch (b, j)'s entries are [start[b * n + j], start[b * n + j + 1]) of
// sorted_grad / sorted_qbase, the (b, q, r) entries choosing it in (q, r) order: their distance
// gradient and their query patch's offset in a query plane. grad_query / grad_key: outputs of
// `dtype`, shaped like query / key, every element written.
Status cross_scale_knn_grad(const void* grad, const void* kbase, const void* start, const void* sorted_grad,
                            const void* sorted_qbase, const void* query, const void* key, void* grad_query,
                            void* grad_key, DType dtype, bool wide, KnnGradShape s, cudaStream_t stream);

}  // namespace sr_cuda
