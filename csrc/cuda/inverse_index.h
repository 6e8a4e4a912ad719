// The inverse of a neighbour index, for the glue of the output-stationary backwards
// (cross_scale_knn, graph_aggregate): which (b, q, r) entries chose each key patch.
//
// Built without atomics, in an order fixed by the inputs: the entries e = (b * m + q) * k + r
// are sorted by their global key number b * n + idx[e] with a stable sort, so each key's
// entries stay in e order, and a key's first entry is found by a binary search of the
// sorted keys (the exclusive prefix sum of the per-key counts, without counting).
#pragma once

#include <ATen/ATen.h>

#include <algorithm>

namespace sr_cuda {

struct InverseIndex {
  at::Tensor start;  // (B * n + 1,) of index_type: key b * n + j owns order[start[.] : start[. + 1]]
  at::Tensor order;  // (B * m * k,) int64 entry numbers, sorted by (b, key, e)
};

// idx (B, m, k) int64 with values in [0, n) (checked by the caller).
inline InverseIndex inverse_index(const at::Tensor& idx, int64_t n, at::ScalarType index_type) {
  const int64_t B = idx.size(0);
  const at::Tensor keys = (idx.reshape({B, -1}) + at::arange(B, idx.options()).mul_(n).unsqueeze(1)).reshape({-1});
  const auto sorted = keys.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false);
  const at::Tensor bounds = at::arange(B * n + 1, idx.options());
  const at::Tensor start =
      at::searchsorted(std::get<0>(sorted), bounds, /*out_int32=*/index_type == at::kInt, /*right=*/false);
  return {start, std::get<1>(sorted)};
}

// Whether a call's index math needs 64 bits: any of these element counts reaches 2^31.
inline bool needs_wide(std::initializer_list<int64_t> counts) { return std::max(counts) >= (int64_t(1) << 31); }

}  // namespace sr_cuda
