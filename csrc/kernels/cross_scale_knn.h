// cross_scale_knn: shared per-query math (window placement, running top-k) used by
// the CPU and CUDA kernels. See docs/design.md for the contract.
#pragma once

#include "kernels/common.h"

namespace sr {

struct KnnDims {
  int64_t B, C, H, W, Hk, Wk, P, T, S;  // S: scale between the maps
  int64_t m1, m2, n1, n2;               // query grid, key grid
  int64_t w1, w2, half;                 // window extent (rows, cols), its offset
};

// window <= 0 means "no window": every key patch is a candidate. The window rule divides
// by S and subtracts `offset` (window // 2 when offset < 0): see window_start.
SR_HOST_DEVICE KnnDims knn_dims(int64_t B, int64_t C, int64_t H, int64_t W, int64_t Hk, int64_t Wk, int64_t P,
                                int64_t T, int64_t S, int64_t window, int64_t offset = -1) {
  KnnDims d;
  d.B = B;
  d.C = C;
  d.H = H;
  d.W = W;
  d.Hk = Hk;
  d.Wk = Wk;
  d.P = P;
  d.T = T;
  d.S = S;
  d.m1 = grid_len(H, P, T);
  d.m2 = grid_len(W, P, T);
  d.n1 = grid_len(Hk, P, T);
  d.n2 = grid_len(Wk, P, T);
  d.w1 = window > 0 ? imin(window, d.n1) : d.n1;
  d.w2 = window > 0 ? imin(window, d.n2) : d.n2;
  d.half = window > 0 ? (offset >= 0 ? offset : window / 2) : 0;
  return d;
}

// First key row (or column) of query row i's window: clamp(i // S - half, 0, n - w).
SR_HOST_DEVICE int64_t window_start(int64_t i, int64_t S, int64_t half, int64_t n, int64_t w) {
  return imax(int64_t(0), imin(i / S - half, n - w));
}

// True when x is NaN, written without <cmath> so that it compiles the same on host and device.
template <typename T>
SR_HOST_DEVICE bool knn_isnan(T x) {
  return !(x == x);
}

// (dist, index) orders before (d2, i2): smaller distance, ties to the smaller index. A NaN
// distance ranks after every other, +inf included, and NaNs among themselves by index.
template <typename T>
SR_HOST_DEVICE bool knn_before(T dist, int64_t index, T d2, int64_t i2) {
  if (knn_isnan(d2)) return !knn_isnan(dist) || index < i2;
  return dist < d2 || (dist == d2 && index < i2);
}

// Empty top-k slots: (NaN, INT64_MAX), after every real candidate, NaN ones included.
template <typename T>
SR_HOST_DEVICE void topk_reset(T* dist, int64_t* idx, int64_t k) {
  for (int64_t s = 0; s < k; ++s) {
    dist[s] = T(__builtin_nan(""));
    idx[s] = INT64_MAX;
  }
}

// Insert into a running top-k kept sorted ascending by knn_before; slots start empty. Insertion sort: k is small (IGNN uses 5).
// Places (d, i) at slot `pos` or earlier, shifting the entries it orders before.
template <typename T>
SR_HOST_DEVICE void sift_into(T* dist, int64_t* idx, int64_t pos, T d, int64_t i) {
  while (pos > 0 && knn_before(d, i, dist[pos - 1], idx[pos - 1])) {
    dist[pos] = dist[pos - 1];
    idx[pos] = idx[pos - 1];
    --pos;
  }
  dist[pos] = d;
  idx[pos] = i;
}

template <typename T>
SR_HOST_DEVICE void topk_insert(T* dist, int64_t* idx, int64_t k, T d, int64_t i) {
  if (knn_before(d, i, dist[k - 1], idx[k - 1])) sift_into(dist, idx, k - 1, d, i);
}

// Re-sorts k (dist, idx) pairs in place by knn_before (insertion sort; k is small).
template <typename T>
SR_HOST_DEVICE void sort_topk(T* dist, int64_t* idx, int64_t k) {
  for (int64_t s = 1; s < k; ++s) sift_into(dist, idx, s, dist[s], idx[s]);
}

// ||q||^2 + ||c||^2 - 2 q.c, clamped at 0 against cancellation. NaN (inf - inf, from a
// patch holding inf or NaN) becomes +inf: such a candidate must never look like a match.
template <typename T>
SR_HOST_DEVICE T sq_dist_from_dot(T qn, T cn, T dot) {
  const T v = qn + cn - T(2) * dot;
  if (knn_isnan(v)) return T(__builtin_huge_val());
  return v > T(0) ? v : T(0);
}

}  // namespace sr
