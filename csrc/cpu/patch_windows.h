// CPU building blocks shared by extract_patches, gather_patches and merge_patches:
// cropping windows listed by (coords, order) out of an image, and pasting them back.
//
// Pasting is output-stationary: the HR image is cut into (batch, row band) tasks and
// each task walks the windows of its batch that cross its band, adding them into a
// band-sized accumulator (all channels) and counting the coverage. Tasks own disjoint
// output rows, so there are no atomics, no full-size count map, and every pixel sums its
// windows in `order` order (deterministic).
#pragma once

#include <ATen/Parallel.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "cpu/dispatch.h"
#include "kernels/gather_patches.h"
#include "kernels/merge_patches.h"

namespace sr_cpu {

// Paste accumulator: double for float/double, float for the half types. Sums of k equal
// values are then exact, so averaging identical overlaps returns the value bit for bit.
template <typename T>
using PasteAcc = std::conditional_t<(sizeof(T) >= 4), double, float>;

// The big outputs here (patch stacks, HR images) are fresh allocations written once, so
// first-touch page faults are a large share of their cost. Advising transparent huge
// pages on the 2 MiB-aligned interior of the buffer turns 512 faults into one (measured
// ~3x cheaper for a 16 MiB output); a no-op where THP is off or the pages already exist.
inline at::Tensor empty_large(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(1) << 21;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t lo = (begin + kHuge - 1) & ~(kHuge - 1), hi = (begin + t.nbytes()) & ~(kHuge - 1);
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);  // advice only: errors ignored
#endif
  return t;
}

// Sequence positions i grouped by batch, each batch's sorted by window row (then by i),
// with those rows beside them: a band then finds the windows crossing it by binary search
// instead of scanning them all.
struct ByBatch {
  std::vector<int64_t> start, idx, row;
};

inline ByBatch group_by_batch(const int64_t* coords, const int64_t* order, int64_t N, int64_t B) {
  ByBatch g;
  g.start.assign(B + 1, 0);
  g.idx.resize(N);
  g.row.resize(N);
  for (int64_t i = 0; i < N; ++i) ++g.start[coords[3 * order[i]] + 1];
  for (int64_t b = 0; b < B; ++b) g.start[b + 1] += g.start[b];
  std::vector<int64_t> next(g.start.begin(), g.start.end() - 1);
  for (int64_t i = 0; i < N; ++i) g.idx[next[coords[3 * order[i]]]++] = i;
  auto row_of = [&](int64_t i) { return coords[3 * order[i] + 1]; };
  for (int64_t b = 0; b < B; ++b)
    std::stable_sort(g.idx.begin() + g.start[b], g.idx.begin() + g.start[b + 1],
                     [&](int64_t i, int64_t j) { return row_of(i) < row_of(j); });
  for (int64_t k = 0; k < N; ++k) g.row[k] = row_of(g.idx[k]);
  return g;
}

// Calls f(i, py, y, x0) for each row y in [y0, y1) of each window of batch b crossing it.
template <class F>
void visit_band(const ByBatch& g, const int64_t* coords, const int64_t* order, int64_t b, int64_t y0, int64_t y1,
                int64_t Q, int64_t scale, F&& f) {
  // First window reaching the band: scale*row + Q > y0.
  const auto first = std::upper_bound(g.row.begin() + g.start[b], g.row.begin() + g.start[b + 1], 0,
                                      [&](int64_t, int64_t r) { return scale * r + Q > y0; });
  for (int64_t k = first - g.row.begin(); k < g.start[b + 1] && scale * g.row[k] < y1; ++k) {
    const int64_t i = g.idx[k];
    const sr::Window w = sr::window_of(coords, order, i, scale);
    const int64_t lo = std::max(y0, w.y), hi = std::min(y1, w.y + Q);
    for (int64_t y = lo; y < hi; ++y) f(i, y - w.y, y, w.x);
  }
}

// Rows per (batch, band) task: enough tasks to balance the threads, few enough that the
// band's accumulators stay in cache.
inline int64_t band_rows(int64_t B, int64_t H) {
  const int64_t want_tasks = 8 * int64_t(at::get_num_threads());
  const int64_t bands = std::max<int64_t>(1, (want_tasks + B - 1) / B);
  return std::max<int64_t>(4, std::min<int64_t>(32, (H + bands - 1) / bands));
}

// cnt[(y - y0) * W + x] = how many windows of batch b cover pixel (y, x), y in [y0, y1).
inline void band_coverage(const ByBatch& g, const int64_t* coords, const int64_t* order, int64_t b, int64_t y0,
                          int64_t y1, int64_t W, int64_t Q, int64_t scale, int32_t* cnt) {
  std::fill(cnt, cnt + (y1 - y0) * W, 0);
  visit_band(g, coords, order, b, y0, y1, Q, scale, [&](int64_t, int64_t, int64_t y, int64_t x0) {
    int32_t* row = cnt + (y - y0) * W + x0;
    for (int64_t px = 0; px < Q; ++px) ++row[px];
  });
}

// dst (N, C, Q, Q)[i] = window i of src (B, C, H, W) (gather, extract).
template <typename T>
void crop_windows(const T* src, T* dst, const int64_t* coords, const int64_t* order, int64_t N, int64_t C, int64_t H,
                  int64_t W, int64_t Q, int64_t scale) {
#pragma omp parallel for schedule(static) if (worth_threads(N * C * Q * Q))
  for (int64_t ic = 0; ic < N * C; ++ic) {
    const int64_t i = ic / C, c = ic % C;
    const sr::Window w = sr::window_of(coords, order, i, scale);
    for (int64_t py = 0; py < Q; ++py) {
      const T* s = src + sr::nchw_offset(C, H, W, w.b, c, w.y + py, w.x);
      std::copy(s, s + Q, dst + (ic * Q + py) * Q);
    }
  }
}

// dst (B, C, H, W) = sum of the src (N, C, Q, Q) windows pasted at their corners, or with
// `mean` their average (0 where none covers). One task per (batch, row band) takes every
// channel, so the band's coverage is counted once, next to the sums it divides.
template <typename T>
void paste_windows(const T* src, T* dst, const ByBatch& g, const int64_t* coords, const int64_t* order, int64_t B,
                   int64_t C, int64_t H, int64_t W, int64_t Q, int64_t scale, bool mean) {
  using Acc = PasteAcc<T>;
  const int64_t bh = band_rows(B, H), nb = (H + bh - 1) / bh;
#pragma omp parallel if (worth_threads(B * C * H * W))
  {
    std::vector<Acc> acc(C * bh * W);
    std::vector<int32_t> cnt(mean ? bh * W : 0);
    std::vector<Acc> inv(mean ? W : 0);
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < B * nb; ++task) {
      const int64_t b = task / nb, y0 = (task % nb) * bh, y1 = std::min(H, y0 + bh), rows = y1 - y0;
      std::fill(acc.begin(), acc.end(), Acc(0));
      if (mean) band_coverage(g, coords, order, b, y0, y1, W, Q, scale, cnt.data());
      visit_band(g, coords, order, b, y0, y1, Q, scale, [&](int64_t i, int64_t py, int64_t y, int64_t x0) {
        for (int64_t c = 0; c < C; ++c) {
          const T* s = src + ((i * C + c) * Q + py) * Q;
          Acc* a = acc.data() + (c * rows + y - y0) * W + x0;
          for (int64_t px = 0; px < Q; ++px) a[px] += Acc(s[px]);
        }
      });
      for (int64_t y = y0; y < y1; ++y) {
        if (mean) {
          // One reciprocal per pixel for all channels (the divisions dominated the pass). For
          // float and the half types Acc is wider than T, so sum * (1/count) rounds to the T
          // that sum / count would (the mean of k equal values stays exact).
          const int32_t* n = cnt.data() + (y - y0) * W;
          for (int64_t x = 0; x < W; ++x) inv[x] = Acc(1) / Acc(n[x] > 0 ? n[x] : 1);
        }
        for (int64_t c = 0; c < C; ++c) {
          T* out = dst + sr::nchw_offset(C, H, W, b, c, y, 0);
          const Acc* a = acc.data() + (c * rows + y - y0) * W;
          if (mean) {
            for (int64_t x = 0; x < W; ++x) out[x] = T(a[x] * inv[x]);
          } else {
            for (int64_t x = 0; x < W; ++x) out[x] = T(a[x]);
          }
        }
      }
    }
  }
}

// merge's backward: dst (N, C, Q, Q)[i] = window i of grad (B, C, H, W), each pixel divided
// by its coverage. Band tasks as in paste_windows; every window row lies in one band, so
// tasks write disjoint rows of dst.
template <typename T>
void crop_mean_grad(const T* grad, T* dst, const ByBatch& g, const int64_t* coords, const int64_t* order, int64_t B,
                    int64_t C, int64_t H, int64_t W, int64_t Q, int64_t scale) {
  using Acc = at::opmath_type<T>;
  const int64_t bh = band_rows(B, H), nb = (H + bh - 1) / bh;
#pragma omp parallel if (worth_threads(B * C * H * W))
  {
    std::vector<int32_t> cnt(bh * W);
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < B * nb; ++task) {
      const int64_t b = task / nb, y0 = (task % nb) * bh, y1 = std::min(H, y0 + bh);
      band_coverage(g, coords, order, b, y0, y1, W, Q, scale, cnt.data());
      visit_band(g, coords, order, b, y0, y1, Q, scale, [&](int64_t i, int64_t py, int64_t y, int64_t x0) {
        const int32_t* n = cnt.data() + (y - y0) * W + x0;
        for (int64_t c = 0; c < C; ++c) {
          const T* s = grad + sr::nchw_offset(C, H, W, b, c, y, x0);
          T* out = dst + ((i * C + c) * Q + py) * Q;
          for (int64_t px = 0; px < Q; ++px) out[px] = sr::merge_grad<T, Acc>(s[px], n[px]);
        }
      });
    }
  }
}

}  // namespace sr_cpu
