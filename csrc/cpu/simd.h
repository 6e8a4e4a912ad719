// Eight-float vectors (GCC/Clang vector extensions) for the hand-written reductions: GCC
// keeps `lane[j] += x[e + j]` over a float array as scalar adds, while these compile to
// one AVX register in the SR_CPU_CLONES avx2 clone and to two SSE registers elsewhere.
#pragma once
// The vectors only cross inline helpers, never an ABI boundary.
#pragma GCC diagnostic ignored "-Wpsabi"

#include <cstring>

namespace sr_simd {

typedef float f32x8 __attribute__((vector_size(32)));

inline f32x8 load8(const float* p) {
  f32x8 v;
  std::memcpy(&v, p, sizeof v);  // unaligned load
  return v;
}

inline void store8(float* p, f32x8 v) { std::memcpy(p, &v, sizeof v); }

inline f32x8 splat8(float a) { return f32x8{} + a; }

// A tree over the lanes (three dependent adds).
inline float hsum8(f32x8 v) {
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

}  // namespace sr_simd
