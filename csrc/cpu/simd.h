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
inline float hsum8(f32x8 v) { return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7])); }

// A NaN in a passes through both (every comparison with it is false).
inline f32x8 min8(f32x8 a, f32x8 b) { return a > b ? b : a; }
inline f32x8 max8(f32x8 a, f32x8 b) { return a < b ? b : a; }

// erf of eight floats: the odd rational approximation x P(x^2) / Q(x^2) on [-4, 4] that
// Eigen and XLA use for float (a few ulp; erf(+-4) is 1 in float), so the exact GELU runs
// in registers instead of one libm call per value. NaN stays NaN: both comparisons in
// the clamp are false for it.
inline f32x8 erf8(f32x8 x) {
  const f32x8 v = min8(max8(x, splat8(-4.0f)), splat8(4.0f));
  const f32x8 v2 = v * v;
  f32x8 p = splat8(-2.72614225801306e-10f);
  p = p * v2 + 2.77068142495902e-08f;
  p = p * v2 + -2.10102402082508e-06f;
  p = p * v2 + -5.69250639462346e-05f;
  p = p * v2 + -7.34990630326855e-04f;
  p = p * v2 + -2.95459980854025e-03f;
  p = p * v2 + -1.60960333262415e-02f;
  f32x8 q = splat8(-1.45660718464996e-05f);
  q = q * v2 + -2.13374055278905e-04f;
  q = q * v2 + -1.68282697438203e-03f;
  q = q * v2 + -7.37332916720468e-03f;
  q = q * v2 + -1.42647390514189e-02f;
  return min8(max8(v * p / q, splat8(-1.0f)), splat8(1.0f));
}

// The exact (erf) GELU of eight floats; the limits as torch's: gelu(+inf) = +inf,
// gelu(-inf) = -inf * 0 = NaN.
inline f32x8 gelu8(f32x8 x) { return 0.5f * x * (1.0f + erf8(x * 0.70710678118654752f)); }

}  // namespace sr_simd
