// Pixel-class layout for the CPU cross_scale_knn kernel (see cross_scale_knn.cpp).
//
// With stride T, patch offset dy = ry + T*uy (ry = dy % T) of patch row i reads pixel row
// T*(i + uy) + ry: the pixels of class ry, at class row i + uy. A map split by class
// (ry, rx) into C-contiguous pixels lets each patch dot product be summed from P*P pixel
// dot products, and each pixel dot product is one C-long row of a GEMM.
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/clones.h"
#include "kernels/common.h"

namespace sr_cpu {

// Class (ry, rx) holds the patch offsets ry + T*uy, uy < sy (and rx + T*ux, ux < sx).
struct PixelClass {
  int64_t ry, rx, sy, sx;
};

inline std::vector<PixelClass> pixel_classes(int64_t P, int64_t T) {
  std::vector<PixelClass> cls;
  const int64_t n = sr::imin(P, T);
  for (int64_t ry = 0; ry < n; ++ry)
    for (int64_t rx = 0; rx < n; ++rx) cls.push_back({ry, rx, (P - ry + T - 1) / T, (P - rx + T - 1) / T});
  return cls;
}

// Sums with eight running partial sums, so that they vectorise without -ffast-math. The
// order depends only on n, so equal inputs give equal sums wherever they sit.
template <typename T>
SR_CPU_CLONES T sq_diff(const T* x, const T* y, int64_t n) {
  T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t e = 0;
  for (; e + 8 <= n; e += 8)
    for (int u = 0; u < 8; ++u) acc[u] += (x[e + u] - y[e + u]) * (x[e + u] - y[e + u]);
  T s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; e < n; ++e) s += (x[e] - y[e]) * (x[e] - y[e]);
  return s;
}

template <typename T>
SR_CPU_CLONES T sum_sq(const T* x, int64_t n) {
  T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t e = 0;
  for (; e + 8 <= n; e += 8)
    for (int u = 0; u < 8; ++u) acc[u] += x[e + u] * x[e + u];
  T s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; e < n; ++e) s += x[e] * x[e];
  return s;
}

// Class rows [A0, A0 + nA), columns [0, nB) of a (C, H, W) map: out[(A * nB + B) * C + c] =
// map[c, T*(A0 + A) + k.ry, T*B + k.rx], and norms[A * nB + B] its squared norm. Map rows
// are read whole, one channel at a time; the strided writes stay within one output row.
template <typename T>
SR_CPU_CLONES void gather_class_rows(const T* map, int64_t C, int64_t H, int64_t W, int64_t stride, const PixelClass& k,
                                     int64_t A0, int64_t nA, int64_t nB, T* out, T* norms) {
  for (int64_t A = 0; A < nA; ++A) {
    T* dst = out + A * nB * C;
    for (int64_t c = 0; c < C; ++c) {
      const T* src = map + (c * H + stride * (A0 + A) + k.ry) * W + k.rx;
      for (int64_t B = 0; B < nB; ++B) dst[B * C + c] = src[stride * B];
    }
    for (int64_t B = 0; B < nB; ++B) norms[A * nB + B] = sum_sq(dst + B * C, C);
  }
}

// One key column of a query's window: the n dot products dot[t] = sum over e < nt of
// src[e][t] (the P*P pixel products), and bounds on the squared distances v = qn + kn[t] -
// 2 dot[t]: lo, hi = v -/+ (tol (qn + kn[t]) + tiny), or -inf, +inf where v or the bound is
// not finite. Eight t at a time stay in registers. Writes the t with lo <= bound to `hits`
// (branch-free) and returns how many there are.
template <typename T>
SR_CPU_CLONES int64_t column_bounds(const T* const* src, int64_t nt, int64_t n, T qn, const T* kn, T tol, T tiny,
                                    T bound, T* lo, T* hi, int32_t* hits) {
  const T inf = T(__builtin_huge_val());
  int64_t below = 0;
  int64_t t = 0;
#if defined(__GNUC__)
  // GCC/Clang vector extensions: eight lanes, branch-free (the auto-vectoriser left the
  // selects scalar).
  typedef T V __attribute__((vector_size(8 * sizeof(T))));
  auto load = [](const T* p) {
    V x;
    __builtin_memcpy(&x, p, sizeof(V));
    return x;
  };
  const V pinf = V{} + inf, ninf = V{} - inf;
  for (; t + 8 <= n; t += 8) {
    V acc = load(src[0] + t);
    for (int64_t s = 1; s < nt; ++s) acc += load(src[s] + t);
    const V knv = load(kn + t);
    const V v = qn + knv - T(2) * acc, e = tol * (qn + knv) + tiny;
    const auto finite = (v + e) < pinf;
    const V l = finite ? v - e : ninf, h = finite ? v + e : pinf;
    __builtin_memcpy(lo + t, &l, sizeof(V));
    __builtin_memcpy(hi + t, &h, sizeof(V));
    const auto hit = l <= bound;
    for (int u = 0; u < 8; ++u) {
      hits[below] = int32_t(t + u);
      below += hit[u] ? 1 : 0;
    }
  }
#endif
  for (; t < n; ++t) {
    T acc = src[0][t];
    for (int64_t s = 1; s < nt; ++s) acc += src[s][t];
    const T v = qn + kn[t] - T(2) * acc, e = tol * (qn + kn[t]) + tiny;
    lo[t] = v + e < inf ? v - e : -inf;
    hi[t] = v + e < inf ? v + e : inf;
    hits[below] = int32_t(t);
    below += lo[t] <= bound ? 1 : 0;
  }
  return below;
}

}  // namespace sr_cpu
