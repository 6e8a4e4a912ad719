// cross_scale_knn's argument checks, shared by the CPU kernels and the CUDA glue: the
// forward's and the backward's, whose idx values the kernels gather and scatter at.
#pragma once

#include "check.h"
#include "kernels/cross_scale_knn.h"

namespace sr_check {

// query (B, C, H, W) and key (B, C, Hk, Wk) of one dtype and device; the grids and window.
inline sr::KnnDims knn_dims(const at::Tensor& q, const at::Tensor& key, int64_t k, int64_t P, int64_t T, int64_t window,
                            int64_t S, int64_t offset = -1) {
  dims(q, "query", 4, "(B, C, H, W)");
  dims(key, "key", 4, "(B, C, Hk, Wk)");
  floating(q, "query");
  same_dtype(key, "key", q, "query");
  same_device(key, "key", q, "query");
  SR_CHECK_SHAPE(key.size(0) == q.size(0) && key.size(1) == q.size(1), key, "key",
                 "(B, C, Hk, Wk) with query's B and C");
  TORCH_CHECK_VALUE(q.size(1) > 0, "query must have at least one channel, got shape ", shape(q.sizes()));
  positive(k, "k");
  positive(P, "patch_size");
  positive(T, "stride");
  positive(S, "scale");
  patch_fits(P, q.size(2), q.size(3), "query");
  patch_fits(P, key.size(2), key.size(3), "key");
  auto d = sr::knn_dims(q.size(0), q.size(1), q.size(2), q.size(3), key.size(2), key.size(3), P, T, S, window, offset);
  TORCH_CHECK_VALUE(k <= d.w1 * d.w2, "k must be at most the ", d.w1 * d.w2,
                    " candidate key patches of each query (key grid ", d.n1, "x", d.n2,
                    ", window=", window > 0 ? std::to_string(window) : std::string("None"), "), got k=", k);
  return d;
}

// The backward's idx (B, m, k) int64 key-patch numbers and grad_dist shaped like it.
inline sr::KnnDims knn_backward_dims(const at::Tensor& grad_dist, const at::Tensor& idx, const at::Tensor& q,
                                     const at::Tensor& key, int64_t P, int64_t T) {
  const auto d = knn_dims(q, key, 1, P, T, -1, 1);
  int64(idx, "idx");
  same_device(idx, "idx", q, "query");
  same_device(grad_dist, "grad_dist", q, "query");
  SR_CHECK_SHAPE(idx.dim() == 3 && idx.size(0) == d.B && idx.size(1) == d.m1 * d.m2, idx, "idx",
                 "(B, m, k) with query's B and m patches");
  shape_like(grad_dist, "grad_dist", idx.sizes(), "idx");
  index_range(idx, d.n1 * d.n2, "idx", "the key patches");
  return d;
}

}  // namespace sr_check
