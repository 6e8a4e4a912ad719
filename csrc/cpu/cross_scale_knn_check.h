// Argument checks shared by the CPU cross_scale_knn forward and backward kernels.
#pragma once

#include <ATen/ATen.h>

#include "kernels/cross_scale_knn.h"

namespace sr_cpu {

inline sr::KnnDims knn_check_dims(const at::Tensor& q, const at::Tensor& key, int64_t k, int64_t P,
                                  int64_t T, int64_t window, int64_t S, int64_t offset = -1) {
  TORCH_CHECK(q.dim() == 4 && key.dim() == 4, "query and key must be (B, C, H, W)");
  TORCH_CHECK(q.size(0) == key.size(0) && q.size(1) == key.size(1),
              "query and key must agree in batch and channels");
  TORCH_CHECK(P > 0 && T > 0 && S > 0 && k > 0, "k, patch_size, stride, scale must be positive");
  TORCH_CHECK(P <= q.size(2) && P <= q.size(3) && P <= key.size(2) && P <= key.size(3),
              "patch_size larger than a map");
  auto d = sr::knn_dims(q.size(0), q.size(1), q.size(2), q.size(3), key.size(2), key.size(3),
                        P, T, S, window, offset);
  TORCH_CHECK(k <= d.w1 * d.w2, "k=", k, " is more than the ", d.w1 * d.w2,
              " candidates in a window");
  return d;
}

}  // namespace sr_cpu
