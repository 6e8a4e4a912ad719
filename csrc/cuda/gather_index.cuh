// Device helpers for the output-stationary backwards (cross_scale_knn, graph_aggregate):
// index math in I (int32_t, or int64_t only for tensors of 2^31 elements or more).
#pragma once

namespace sr_cuda {

// Grid positions [lo, hi] of P-long windows every T (n of them) that hold coordinate y.
template <typename I>
__device__ __forceinline__ void covering(I y, I P, I T, I n, I* lo, I* hi) {
  *lo = y < P ? I(0) : (y - P) / T + 1;
  *hi = y / T < n - 1 ? y / T : n - 1;
}

// One (b, q, r) entry of an inverse index, as the glue lays it out: its number
// e = (b * m + q) * k + r, r, and its query patch's row i and column j (one 16-byte load).
template <typename I>
struct alignas(4 * sizeof(I)) Entry {
  I e, r, i, j;
};

// Grid size for one thread per element of `pixels`-long planes, `planes` of them: x over
// the plane's pixels, y over planes (a kernel loops over planes past 65535).
inline dim3 plane_grid(int64_t pixels, int64_t planes, int threads) {
  const int64_t y = planes < 65535 ? planes : 65535;
  return dim3(static_cast<unsigned>((pixels + threads - 1) / threads), static_cast<unsigned>(y > 0 ? y : 1));
}

}  // namespace sr_cuda
