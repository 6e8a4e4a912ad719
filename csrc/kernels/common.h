// Shared helpers for the torch-free kernel code.
//
// Everything in csrc/kernels compiles three ways: as plain C++ (CPU kernels and the
// ctest unit tests), and under nvcc for the CUDA kernels. Per-element math is written
// once as SR_HOST_DEVICE inline functions so the CPU tests exercise the exact
// arithmetic the GPU runs.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define SR_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define SR_HOST_DEVICE inline
#endif

namespace sr {

SR_HOST_DEVICE int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
SR_HOST_DEVICE int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

// Number of p-sized, t-strided windows along an axis of length n (no padding).
SR_HOST_DEVICE int64_t grid_len(int64_t n, int64_t p, int64_t t) { return n < p ? 0 : (n - p) / t + 1; }

// Inclusive range [lo, hi] of grid positions i (0 <= i < m) whose window
// [t*i, t*i + p) contains coordinate y. Empty when hi < lo.
SR_HOST_DEVICE void cover_range(int64_t y, int64_t p, int64_t t, int64_t m, int64_t* lo, int64_t* hi) {
  *lo = y < p ? 0 : (y - p) / t + 1;
  *hi = imin(m - 1, y / t);
}

SR_HOST_DEVICE int64_t cover_count(int64_t y, int64_t p, int64_t t, int64_t m) {
  int64_t lo, hi;
  cover_range(y, p, t, m, &lo, &hi);
  return hi >= lo ? hi - lo + 1 : 0;
}

}  // namespace sr
