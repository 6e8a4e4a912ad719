// Unit tests for csrc/kernels/common.h and csrc/kernels/patch2img.h, checked against
// brute force that only uses the documented layout:
//   patches  (B, L, C, P, P) contiguous, l = i * m2 + j on a row-major m1 x m2 grid,
//            patch (i, j) covering rows [T*i, T*i + P) and columns [T*j, T*j + P);
//   out      (B, C, H, W) contiguous, each pixel the mean of the patches covering it,
//            0 where none does.
// The brute-force side never calls into sr::, so a bug in the kernel helpers cannot
// hide in both.
#include <array>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/patch2img.h"
#include "tests/check.h"

namespace {

// ---------------------------------------------------------------- brute force ----

int64_t brute_grid_len(int64_t n, int64_t p, int64_t t) {
  int64_t m = 0;
  while (t * m + p <= n) ++m;
  return m;
}

// Grid positions i in [0, m) whose window [t*i, t*i + p) contains y, ascending.
std::vector<int64_t> brute_covers(int64_t y, int64_t p, int64_t t, int64_t m) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < m; ++i)
    if (t * i <= y && y < t * i + p) out.push_back(i);
  return out;
}

struct Shape {
  int64_t B, C, H, W, P, T;
  int64_t m1() const { return brute_grid_len(H, P, T); }
  int64_t m2() const { return brute_grid_len(W, P, T); }
  int64_t L() const { return m1() * m2(); }
  int64_t n_patch() const { return B * L() * C * P * P; }
  int64_t n_out() const { return B * C * H * W; }
  std::string str() const {
    char buf[160];
    std::snprintf(buf, sizeof buf, "B=%" PRId64 " C=%" PRId64 " H=%" PRId64 " W=%" PRId64 " P=%" PRId64 " T=%" PRId64,
                  B, C, H, W, P, T);
    return buf;
  }
};

int64_t patch_index(const Shape& s, int64_t b, int64_t l, int64_t c, int64_t py, int64_t px) {
  return (((b * s.L() + l) * s.C + c) * s.P + py) * s.P + px;
}

int64_t out_index(const Shape& s, int64_t b, int64_t c, int64_t y, int64_t x) {
  return ((b * s.C + c) * s.H + y) * s.W + x;
}

// Coverage of each pixel (y, x), counted by visiting every window.
std::vector<int64_t> brute_coverage(const Shape& s) {
  std::vector<int64_t> cnt(s.H * s.W, 0);
  for (int64_t i = 0; i < s.m1(); ++i)
    for (int64_t j = 0; j < s.m2(); ++j)
      for (int64_t py = 0; py < s.P; ++py)
        for (int64_t px = 0; px < s.P; ++px) ++cnt[(s.T * i + py) * s.W + s.T * j + px];
  return cnt;
}

// Scatter every patch element onto its pixel, accumulating in S, then average.
// Each pixel receives its patches in ascending l = (i, j) order.
template <typename S, typename T>
std::vector<S> brute_fold(const std::vector<T>& patches, const Shape& s) {
  const int64_t m2 = s.m2();
  std::vector<S> sum(s.n_out(), S(0));
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t l = 0; l < s.L(); ++l)
      for (int64_t c = 0; c < s.C; ++c)
        for (int64_t py = 0; py < s.P; ++py)
          for (int64_t px = 0; px < s.P; ++px) {
            const int64_t y = s.T * (l / m2) + py, x = s.T * (l % m2) + px;
            sum[out_index(s, b, c, y, x)] += S(patches[patch_index(s, b, l, c, py, px)]);
          }
  const auto cnt = brute_coverage(s);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t c = 0; c < s.C; ++c)
      for (int64_t q = 0; q < s.H * s.W; ++q) {
        S& v = sum[(b * s.C + c) * s.H * s.W + q];
        v = cnt[q] > 0 ? v / S(cnt[q]) : S(0);
      }
  return sum;
}

// The kernel under test, run over the whole output / the whole patch gradient.
template <typename T, typename Acc>
std::vector<T> kernel_forward(const std::vector<T>& patches, const Shape& s) {
  const auto d = sr::patch2img_dims(s.B, s.C, s.H, s.W, s.P, s.T);
  std::vector<T> out(s.n_out());
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t c = 0; c < s.C; ++c)
      for (int64_t y = 0; y < s.H; ++y)
        for (int64_t x = 0; x < s.W; ++x)
          out[out_index(s, b, c, y, x)] = sr::patch2img_pixel<T, Acc>(patches.data(), d, b, c, y, x);
  return out;
}

template <typename T, typename Acc>
std::vector<T> kernel_backward(const std::vector<T>& grad_out, const Shape& s) {
  const auto d = sr::patch2img_dims(s.B, s.C, s.H, s.W, s.P, s.T);
  std::vector<T> out(s.n_patch());
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t l = 0; l < s.L(); ++l)
      for (int64_t c = 0; c < s.C; ++c)
        for (int64_t py = 0; py < s.P; ++py)
          for (int64_t px = 0; px < s.P; ++px)
            out[patch_index(s, b, l, c, py, px)] =
                sr::patch2img_grad_element<T, Acc>(grad_out.data(), d, b, l, c, py, px);
  return out;
}

// Shapes covering the interesting regimes, then random ones.
std::vector<Shape> test_shapes() {
  std::vector<Shape> shapes = {
      {1, 1, 5, 5, 5, 1},    // P == H == W: a single patch
      {2, 1, 6, 17, 6, 1},   // P == H < W, stride 1
      {2, 3, 8, 7, 3, 1},    // stride 1, heavy overlap
      {2, 2, 9, 11, 3, 2},   // overlap, odd sizes
      {1, 2, 12, 12, 4, 4},  // stride == patch: a tiling
      {1, 2, 10, 13, 2, 3},  // stride > patch: uncovered gaps (zeros)
      {3, 2, 7, 9, 3, 5},    // stride > patch with uncovered tails
      {1, 1, 11, 8, 3, 2},   // H - P not a multiple of T: uncovered last row
      {1, 1, 1, 1, 1, 1},    // smallest case
      {1, 1, 9, 9, 1, 1},    // 1x1 patches, identity
      {2, 2, 3, 5, 4, 1},    // P > H: empty grid, all zeros
  };
  std::mt19937_64 rng(20240611);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int k = 0; k < 150; ++k) {
    const int64_t P = pick(1, 6), T = pick(1, 8);
    shapes.push_back({pick(1, 2), pick(1, 3), P + pick(0, 14), P + pick(0, 14), P, T});
  }
  return shapes;
}

// ---------------------------------------------------------------------- tests ----

void test_grid_len() {
  for (int64_t n = 0; n <= 48; ++n)
    for (int64_t p = 1; p <= 12; ++p)
      for (int64_t t = 1; t <= 14; ++t)
        CHECK_MSG(sr::grid_len(n, p, t) == brute_grid_len(n, p, t),
                  "n=%" PRId64 " p=%" PRId64 " t=%" PRId64 ": got %" PRId64 ", want %" PRId64, n, p, t,
                  sr::grid_len(n, p, t), brute_grid_len(n, p, t));
  // A few large axes (closed form: (n - p) / t + 1).
  CHECK(sr::grid_len(1000000, 64, 48) == (1000000 - 64) / 48 + 1);
  CHECK(sr::grid_len(4096, 4096, 7) == 1);
  CHECK(sr::grid_len(4095, 4096, 1) == 0);
}

void check_cover(int64_t y, int64_t p, int64_t t, int64_t m) {
  const auto want = brute_covers(y, p, t, m);
  int64_t lo = -7, hi = -7;
  sr::cover_range(y, p, t, m, &lo, &hi);
  const int64_t count = sr::cover_count(y, p, t, m);
  if (want.empty()) {
    CHECK_MSG(hi < lo,
              "y=%" PRId64 " p=%" PRId64 " t=%" PRId64 " m=%" PRId64 ": want empty, got [%" PRId64 ", %" PRId64 "]", y,
              p, t, m, lo, hi);
  } else {
    CHECK_MSG(lo == want.front() && hi == want.back(),
              "y=%" PRId64 " p=%" PRId64 " t=%" PRId64 " m=%" PRId64 ": got [%" PRId64 ", %" PRId64 "], want [%" PRId64
              ", %" PRId64 "]",
              y, p, t, m, lo, hi, want.front(), want.back());
  }
  CHECK_MSG(count == static_cast<int64_t>(want.size()),
            "y=%" PRId64 " p=%" PRId64 " t=%" PRId64 " m=%" PRId64 ": count %" PRId64 ", want %zu", y, p, t, m, count,
            want.size());
}

void test_cover_range() {
  for (int64_t n = 1; n <= 40; ++n)
    for (int64_t p = 1; p <= n + 2; ++p)          // includes p == n and p > n (m = 0)
      for (int64_t t = 1; t <= 2 * p + 3; ++t) {  // stride 1 up to stride > patch
        const int64_t m = brute_grid_len(n, p, t);
        for (int64_t y = 0; y < n + 3; ++y) check_cover(y, p, t, m);  // also past the end
      }
  // Long axes, sampled coordinates.
  std::mt19937_64 rng(7);
  for (const auto& [n, p, t] :
       std::vector<std::array<int64_t, 3>>{{100000, 48, 32}, {65536, 64, 1}, {99999, 7, 13}, {50000, 50000, 3}}) {
    const int64_t m = brute_grid_len(n, p, t);
    for (int k = 0; k < 20; ++k) check_cover(std::uniform_int_distribution<int64_t>(0, n - 1)(rng), p, t, m);
    check_cover(0, p, t, m);
    check_cover(n - 1, p, t, m);
  }
}

void test_dims() {
  for (const Shape& s : test_shapes()) {
    const auto d = sr::patch2img_dims(s.B, s.C, s.H, s.W, s.P, s.T);
    CHECK_MSG(d.B == s.B && d.C == s.C && d.H == s.H && d.W == s.W && d.P == s.P && d.T == s.T && d.m1 == s.m1() &&
                  d.m2 == s.m2() && d.L == s.L(),
              "%s: dims m1=%" PRId64 " m2=%" PRId64 " L=%" PRId64, s.str().c_str(), d.m1, d.m2, d.L);
    if (s.L() == 0) continue;
    const int64_t last = s.n_patch() - 1;
    CHECK_MSG(sr::patch_offset(d, s.B - 1, s.L() - 1, s.C - 1, s.P - 1, s.P - 1) == last,
              "%s: last patch element offset", s.str().c_str());
    CHECK_MSG(sr::patch_offset(d, 1 % s.B, 1 % s.L(), 1 % s.C, 1 % s.P, 0) ==
                  patch_index(s, 1 % s.B, 1 % s.L(), 1 % s.C, 1 % s.P, 0),
              "%s: patch_offset", s.str().c_str());
  }
}

// Forward: bit-exact against a brute-force fold summed in the same (i, j) order and
// precision Acc (the CPU kernel keeps that order too, so CPU and GPU agree bit for
// bit), and close to a float64 fold.
template <typename T, typename Acc>
void check_forward(const char* types, double tol) {
  std::mt19937_64 rng(1234);
  for (const Shape& s : test_shapes()) {
    const auto patches = sr_test::random_vector<T>(rng, s.n_patch());
    const auto got = kernel_forward<T, Acc>(patches, s);
    const auto same_order = brute_fold<Acc>(patches, s);
    const auto ref = brute_fold<double>(patches, s);
    const auto cnt = brute_coverage(s);
    for (int64_t e = 0; e < s.n_out(); ++e) {
      CHECK_MSG(got[e] == T(same_order[e]), "%s %s: out[%" PRId64 "] = %.9g, brute %.9g", types, s.str().c_str(), e,
                double(got[e]), double(same_order[e]));
      CHECK_MSG(sr_test::near(double(got[e]), ref[e], tol), "%s %s: out[%" PRId64 "] = %.17g, float64 fold %.17g",
                types, s.str().c_str(), e, double(got[e]), ref[e]);
      if (cnt[e % (s.H * s.W)] == 0)
        CHECK_MSG(got[e] == T(0), "%s %s: uncovered out[%" PRId64 "] = %g", types, s.str().c_str(), e, double(got[e]));
    }
  }
}

void test_forward_float() { check_forward<float, float>("<float,float>", 1e-6); }
void test_forward_double() { check_forward<double, double>("<double,double>", 1e-14); }
void test_forward_float_double_acc() { check_forward<float, double>("<float,double>", 1e-6); }

// Backward, elementwise: against the brute-force transpose in closed form (each patch
// element receives grad_out at its pixel over that pixel's coverage, counted by
// brute force), bit-exact in the same precision.
template <typename T, typename Acc>
void check_backward_elementwise(const char* types) {
  std::mt19937_64 rng(99);
  for (const Shape& s : test_shapes()) {
    const auto grad = sr_test::random_vector<T>(rng, s.n_out());
    const auto got = kernel_backward<T, Acc>(grad, s);
    const auto cnt = brute_coverage(s);
    const int64_t m2 = s.m2();
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t l = 0; l < s.L(); ++l)
        for (int64_t c = 0; c < s.C; ++c)
          for (int64_t py = 0; py < s.P; ++py)
            for (int64_t px = 0; px < s.P; ++px) {
              const int64_t y = s.T * (l / m2) + py, x = s.T * (l % m2) + px;
              const T want = T(Acc(grad[out_index(s, b, c, y, x)]) / Acc(cnt[y * s.W + x]));
              const int64_t e = patch_index(s, b, l, c, py, px);
              CHECK_MSG(got[e] == want, "%s %s: grad[%" PRId64 "] = %.17g, want %.17g", types, s.str().c_str(), e,
                        double(got[e]), double(want));
            }
  }
}

void test_backward_elementwise_float() { check_backward_elementwise<float, float>("<float,float>"); }
void test_backward_elementwise_double() { check_backward_elementwise<double, double>("<double,double>"); }

// Backward against the transpose of the forward *matrix*, built column by column
// from one-hot inputs to the brute-force fold (small shapes only: O(n_patch^2)).
void test_backward_matrix_transpose() {
  std::mt19937_64 rng(5);
  int shapes_checked = 0;
  for (const Shape& s : test_shapes()) {
    if (s.n_patch() == 0 || s.n_patch() > 3000) continue;
    ++shapes_checked;
    const auto grad = sr_test::random_vector<double>(rng, s.n_out());
    const auto got = kernel_backward<double, double>(grad, s);
    std::vector<double> onehot(s.n_patch(), 0.0);
    for (int64_t k = 0; k < s.n_patch(); ++k) {
      onehot[k] = 1.0;
      const auto column = brute_fold<double>(onehot, s);  // F e_k
      onehot[k] = 0.0;
      double want = 0.0;  // (F^T g)_k = <F e_k, g>
      for (int64_t q = 0; q < s.n_out(); ++q) want += column[q] * grad[q];
      CHECK_MSG(sr_test::near(got[k], want, 1e-14), "%s: grad[%" PRId64 "] = %.17g, want %.17g", s.str().c_str(), k,
                got[k], want);
    }
  }
  CHECK_MSG(shapes_checked >= 20, "only %d shapes small enough", shapes_checked);
}

// <F(x), g> == <x, F^T(g)> in float64, F and F^T both the kernels under test.
void test_adjoint_identity() {
  std::mt19937_64 rng(42);
  for (const Shape& s : test_shapes()) {
    const auto x = sr_test::random_vector<double>(rng, s.n_patch());
    const auto g = sr_test::random_vector<double>(rng, s.n_out());
    const auto fx = kernel_forward<double, double>(x, s);
    const auto ftg = kernel_backward<double, double>(g, s);
    double lhs = 0.0, rhs = 0.0, scale = 0.0;
    for (int64_t q = 0; q < s.n_out(); ++q) {
      lhs += fx[q] * g[q];
      scale += std::fabs(fx[q] * g[q]);
    }
    for (int64_t k = 0; k < s.n_patch(); ++k) {
      rhs += x[k] * ftg[k];
      scale += std::fabs(x[k] * ftg[k]);
    }
    CHECK_MSG(sr_test::near(lhs, rhs, 1e-13 * (scale + 1.0)), "%s: <F x, g> = %.17g, <x, F^T g> = %.17g",
              s.str().c_str(), lhs, rhs);
  }
}

}  // namespace

int main() {
  return sr_test::run({
      {"grid_len", test_grid_len},
      {"cover_range", test_cover_range},
      {"dims_and_offsets", test_dims},
      {"forward<float,float>", test_forward_float},
      {"forward<double,double>", test_forward_double},
      {"forward<float,double>", test_forward_float_double_acc},
      {"backward_elementwise<float,float>", test_backward_elementwise_float},
      {"backward_elementwise<double,double>", test_backward_elementwise_double},
      {"backward_matrix_transpose", test_backward_matrix_transpose},
      {"adjoint_identity", test_adjoint_identity},
  });
}
