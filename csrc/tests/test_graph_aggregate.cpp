// Unit tests for csrc/kernels/graph_aggregate.h (the per-element math shared by the CPU
// and CUDA graph_aggregate kernels), checked against brute force that only uses the
// contract in docs/design.md:
//   grids     p x p patches, stride t: m = (n - p) // t + 1 positions along an axis
//             (0 when n < p); the HR patch grid has patch s*p, stride s*t, and the HR
//             output is (s*H, s*W);
//   vertices  key patch n of a key map of width Wk (grid width n2) maps to the region
//             at row = s*t*(n // n2), col = s*t*(n % n2) of feat, size s*p;
//   coverage  an HR pixel is divided by the number of HR grid patches covering it;
//   upstream  weighted: grad (B, C, sH, sW) times weights (B, k, sH, sW);
//             unweighted: grad (B, k, C, sH, sW);
//   AdaPN     out = (z - mean_z) / sqrt(var_z + eps) * sqrt(var_q + eps) + mean_q,
//             per channel, unbiased variances.
// The brute-force side never calls into sr::, so a bug in the header cannot hide in
// both; the AdaPN backward is checked against finite differences of the forward.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/graph_aggregate.h"
#include "tests/check.h"

namespace {

using LD = long double;

// ---------------------------------------------------------------- brute force ----

int64_t brute_grid_len(int64_t n, int64_t p, int64_t t) {
  int64_t m = 0;
  while (t * m + p <= n) ++m;
  return m;
}

// Number of HR grid patches (i, j), 0 <= i < m1, 0 <= j < m2, whose P x P window at
// (T*i, T*j) contains pixel (Y, X).
int64_t brute_cover(int64_t Y, int64_t X, int64_t P, int64_t T, int64_t m1, int64_t m2) {
  int64_t count = 0;
  for (int64_t i = 0; i < m1; ++i)
    for (int64_t j = 0; j < m2; ++j)
      if (T * i <= Y && Y < T * i + P && T * j <= X && X < T * j + P) ++count;
  return count;
}

// Two-pass mean and unbiased variance, in long double.
void brute_stats(const std::vector<LD>& v, LD* mean, LD* var) {
  LD s = 0;
  for (LD x : v) s += x;
  const LD mu = s / LD(v.size());
  LD ss = 0;
  for (LD x : v) ss += (x - mu) * (x - mu);
  *mean = mu;
  *var = ss / LD(v.size() - 1);
}

// Same in double (the finite-difference test works in double throughout).
void brute_stats_d(const std::vector<double>& v, double* mean, double* var) {
  double s = 0;
  for (double x : v) s += x;
  const double mu = s / double(v.size());
  double ss = 0;
  for (double x : v) ss += (x - mu) * (x - mu);
  *mean = mu;
  *var = ss / double(v.size() - 1);
}

// L = sum(g * adapn(z, q)), the formula written out.
double brute_adapn_loss(const std::vector<double>& z, const std::vector<double>& q, const std::vector<double>& g,
                        double eps) {
  double mz, vz, mq, vq;
  brute_stats_d(z, &mz, &vz);
  brute_stats_d(q, &mq, &vq);
  double L = 0;
  for (size_t e = 0; e < z.size(); ++e) L += g[e] * ((z[e] - mz) / std::sqrt(vz + eps) * std::sqrt(vq + eps) + mq);
  return L;
}

// Values offset + spread * U(-1, 1).
std::vector<double> random_patch(std::mt19937_64& rng, int64_t n, double offset, double spread) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v) x = offset + spread * u(rng);
  return v;
}

// ---------------------------------------------------------------------- tests ----

struct Shape {
  int64_t B, C, H, W, k, Wk, S, p, t;
  std::string str() const {
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  "B=%" PRId64 " C=%" PRId64 " H=%" PRId64 " W=%" PRId64 " k=%" PRId64 " Wk=%" PRId64 " S=%" PRId64
                  " p=%" PRId64 " t=%" PRId64,
                  B, C, H, W, k, Wk, S, p, t);
    return buf;
  }
};

sr::GraphAggDims dims_of(const Shape& s) { return sr::graph_agg_dims(s.B, s.C, s.H, s.W, s.k, s.Wk, s.S, s.p, s.t); }

void check_dims_case(const Shape& s) {
  const sr::GraphAggDims d = dims_of(s);
  const std::string what = s.str();
  CHECK_MSG(
      d.B == s.B && d.C == s.C && d.H == s.H && d.W == s.W && d.k == s.k && d.S == s.S && d.p == s.p && d.t == s.t,
      "%s: pass-through fields", what.c_str());
  const int64_t m1 = brute_grid_len(s.H, s.p, s.t), m2 = brute_grid_len(s.W, s.p, s.t);
  const int64_t n2 = brute_grid_len(s.Wk, s.p, s.t);
  CHECK_MSG(d.m1 == m1 && d.m2 == m2 && d.n2 == n2,
            "%s: m1=%" PRId64 " m2=%" PRId64 " n2=%" PRId64 ", want %" PRId64 " %" PRId64 " %" PRId64, what.c_str(),
            d.m1, d.m2, d.n2, m1, m2, n2);
  CHECK_MSG(d.P == s.S * s.p && d.T == s.S * s.t && d.HH == s.S * s.H && d.WW == s.S * s.W,
            "%s: P=%" PRId64 " T=%" PRId64 " HH=%" PRId64 " WW=%" PRId64, what.c_str(), d.P, d.T, d.HH, d.WW);
  // The HR grid (patch P, stride T over HH x WW) has exactly the LR grid's positions.
  CHECK_MSG(brute_grid_len(d.HH, d.P, d.T) == m1 && brute_grid_len(d.WW, d.P, d.T) == m2,
            "%s: HR grid differs from the LR grid", what.c_str());
}

void test_dims() {
  check_dims_case({1, 64, 32, 40, 5, 20, 2, 3, 2});  // IGNN-like
  check_dims_case({2, 3, 9, 9, 1, 5, 2, 3, 2});
  check_dims_case({1, 1, 2, 9, 3, 9, 1, 3, 1});  // H < p: empty query grid
  check_dims_case({1, 1, 9, 9, 3, 2, 3, 3, 1});  // Wk < p: empty key grid
  check_dims_case({1, 1, 7, 7, 1, 7, 4, 7, 3});  // single patch
  std::mt19937_64 rng(4242);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int c = 0; c < 3000; ++c)
    check_dims_case({pick(1, 4), pick(1, 9), pick(0, 40), pick(0, 40), pick(1, 8), pick(0, 25), pick(1, 4), pick(1, 5),
                     pick(1, 4)});
}

void test_region_origin() {
  std::mt19937_64 rng(777);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  int64_t keys = 0, multi_row = 0;
  for (int c = 0; c < 600; ++c) {
    const int64_t S = pick(1, 4), p = pick(1, 4), t = pick(1, 3);
    const int64_t Hk = pick(0, 16), Wk = pick(0, 16);
    // Layouts with scale*Hk <= H and scale*Wk <= W: every region lies inside feat.
    const int64_t H = S * Hk + pick(0, 3), W = S * Wk + pick(0, 3);
    const Shape s{1, 1, H, W, 1, Wk, S, p, t};
    const sr::GraphAggDims d = dims_of(s);
    const int64_t n1 = brute_grid_len(Hk, p, t), n2 = brute_grid_len(Wk, p, t);
    if (n1 > 1 && n2 > 0) ++multi_row;
    // Row-major key numbering, counted rather than divided.
    int64_t n = 0;
    for (int64_t a = 0; a < n1; ++a)
      for (int64_t b = 0; b < n2; ++b, ++n) {
        int64_t y = -1, x = -1;
        sr::region_origin(d, n, &y, &x);
        // Key patch (a, b) covers LR key pixels [t*a, t*a + p); scaled up: s times that.
        const int64_t want_y = S * (t * a), want_x = S * (t * b);
        CHECK_MSG(y == want_y && x == want_x,
                  "%s Hk=%" PRId64 ": key %" PRId64 " = (%" PRId64 ", %" PRId64 ") -> (%" PRId64 ", %" PRId64
                  "), want (%" PRId64 ", %" PRId64 ")",
                  s.str().c_str(), Hk, n, a, b, y, x, want_y, want_x);
        CHECK_MSG(y >= 0 && x >= 0 && y + S * p <= H && x + S * p <= W,
                  "%s Hk=%" PRId64 ": region of key %" PRId64 " leaves feat", s.str().c_str(), Hk, n);
        ++keys;
      }
  }
  CHECK_MSG(keys > 5000 && multi_row > 200, "coverage: %" PRId64 " keys, %" PRId64 " multi-row grids", keys, multi_row);
}

// regions_start_inside against the top-left of the last key patch, counted; region_value
// reads the plane inside and 0 past the bottom/right border.
void test_regions_start_inside() {
  std::mt19937_64 rng(4242);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  int64_t yes = 0, no = 0;
  for (int c = 0; c < 2000; ++c) {
    const int64_t S = pick(1, 4), p = pick(1, 4), t = pick(1, 3);
    const int64_t Hk = p + pick(0, 10), Wk = p + pick(0, 10);
    const int64_t H = pick(1, S * Hk + 3), W = pick(1, S * Wk + 3);
    const sr::GraphAggDims d = dims_of(Shape{1, 1, H, W, 1, Wk, S, p, t});
    int64_t last_y = 0, last_x = 0;  // largest key-patch top-left, stepping the grid
    for (int64_t a = 0; t * a + p <= Hk; ++a) last_y = S * t * a;
    for (int64_t b = 0; t * b + p <= Wk; ++b) last_x = S * t * b;
    const bool want = last_y < H && last_x < W;
    (want ? yes : no)++;
    CHECK_MSG(sr::regions_start_inside(d, Hk) == want,
              "S=%" PRId64 " p=%" PRId64 " t=%" PRId64 " Hk=%" PRId64 " Wk=%" PRId64 " H=%" PRId64 " W=%" PRId64
              ": regions_start_inside %d, want %d",
              S, p, t, Hk, Wk, H, W, int(sr::regions_start_inside(d, Hk)), int(want));
    const std::vector<double> plane = sr_test::random_vector<double>(rng, H * W, 1.0, 2.0);
    for (int64_t y = 0; y < H + 3; ++y)
      for (int64_t x = 0; x < W + 3; ++x) {
        const double got = sr::region_value<double, double>(plane.data(), d, y, x);
        const double expect = y < H && x < W ? plane[static_cast<size_t>(y * W + x)] : 0.0;
        CHECK_MSG(got == expect, "region_value(%" PRId64 ", %" PRId64 ") of %" PRId64 "x%" PRId64 " = %g, want %g", y,
                  x, H, W, got, expect);
      }
  }
  CHECK_MSG(yes > 300 && no > 300, "coverage: %" PRId64 " inside, %" PRId64 " outside", yes, no);
}

void test_hr_count() {
  std::mt19937_64 rng(99);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  int64_t pixels = 0, uncovered = 0, multiply = 0;
  for (int c = 0; c < 300; ++c) {
    const Shape s{1, 1, pick(0, 14), pick(0, 14), 1, 5, pick(1, 3), pick(1, 4), pick(1, 3)};
    const sr::GraphAggDims d = dims_of(s);
    const int64_t P = s.S * s.p, T = s.S * s.t;
    const int64_t m1 = brute_grid_len(s.H, s.p, s.t), m2 = brute_grid_len(s.W, s.p, s.t);
    if (d.m1 != m1 || d.m2 != m2) {
      CHECK_MSG(false, "%s: graph_agg_dims grid disagrees", s.str().c_str());
      continue;
    }
    for (int64_t Y = 0; Y < s.S * s.H; ++Y)
      for (int64_t X = 0; X < s.S * s.W; ++X) {
        const int64_t want = brute_cover(Y, X, P, T, m1, m2);
        const int64_t got = sr::hr_count(d, Y, X);
        CHECK_MSG(got == want, "%s: pixel (%" PRId64 ", %" PRId64 ") covered %" PRId64 " times, want %" PRId64,
                  s.str().c_str(), Y, X, got, want);
        ++pixels;
        if (want == 0) ++uncovered;
        if (want > 1) ++multiply;
      }
  }
  CHECK_MSG(pixels > 20000 && uncovered > 1000 && multiply > 1000,
            "coverage: %" PRId64 " pixels, %" PRId64 " uncovered, %" PRId64 " overlapped", pixels, uncovered, multiply);
}

template <typename T, typename Acc>
void check_upstream_grad(const char* types) {
  std::mt19937_64 rng(sizeof(T) * 10 + sizeof(Acc));
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int c = 0; c < 40; ++c) {
    const Shape s{pick(1, 3), pick(1, 3), pick(1, 5), pick(1, 5), pick(1, 4), 4, pick(1, 3), 2, 1};
    const sr::GraphAggDims d = dims_of(s);
    const int64_t HH = s.S * s.H, WW = s.S * s.W;
    // Buffers filled in row-major order; the brute-force side reads them through nested
    // arrays filled by the same running counter, never through an index formula.
    const auto grad4 = sr_test::random_vector<T>(rng, s.B * s.C * HH * WW);
    const auto wts = sr_test::random_vector<T>(rng, s.B * s.k * HH * WW);
    const auto grad5 = sr_test::random_vector<T>(rng, s.B * s.k * s.C * HH * WW);
    using V2 = std::vector<std::vector<T>>;
    std::vector<std::vector<V2>> G4(s.B, std::vector<V2>(s.C, V2(HH, std::vector<T>(WW))));
    std::vector<std::vector<V2>> Wt(s.B, std::vector<V2>(s.k, V2(HH, std::vector<T>(WW))));
    std::vector<std::vector<std::vector<V2>>> G5(
        s.B, std::vector<std::vector<V2>>(s.k, std::vector<V2>(s.C, V2(HH, std::vector<T>(WW)))));
    size_t e4 = 0, ew = 0, e5 = 0;
    for (int64_t b = 0; b < s.B; ++b) {
      for (int64_t ch = 0; ch < s.C; ++ch)
        for (int64_t Y = 0; Y < HH; ++Y)
          for (int64_t X = 0; X < WW; ++X) G4[b][ch][Y][X] = grad4[e4++];
      for (int64_t r = 0; r < s.k; ++r)
        for (int64_t Y = 0; Y < HH; ++Y)
          for (int64_t X = 0; X < WW; ++X) Wt[b][r][Y][X] = wts[ew++];
      for (int64_t r = 0; r < s.k; ++r)
        for (int64_t ch = 0; ch < s.C; ++ch)
          for (int64_t Y = 0; Y < HH; ++Y)
            for (int64_t X = 0; X < WW; ++X) G5[b][r][ch][Y][X] = grad5[e5++];
    }
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t r = 0; r < s.k; ++r)
        for (int64_t ch = 0; ch < s.C; ++ch)
          for (int64_t Y = 0; Y < HH; ++Y)
            for (int64_t X = 0; X < WW; ++X) {
              const Acc got_w = sr::upstream_grad<T, Acc>(grad4.data(), wts.data(), d, b, r, ch, Y, X);
              const Acc want_w = Acc(G4[b][ch][Y][X]) * Acc(Wt[b][r][Y][X]);
              CHECK_MSG(got_w == want_w,
                        "%s %s weighted (b=%" PRId64 " r=%" PRId64 " c=%" PRId64 " Y=%" PRId64 " X=%" PRId64
                        "): %.9g, want %.9g",
                        types, s.str().c_str(), b, r, ch, Y, X, double(got_w), double(want_w));
              const Acc got_u = sr::upstream_grad<T, Acc>(grad5.data(), nullptr, d, b, r, ch, Y, X);
              const Acc want_u = Acc(G5[b][r][ch][Y][X]);
              CHECK_MSG(got_u == want_u,
                        "%s %s unweighted (b=%" PRId64 " r=%" PRId64 " c=%" PRId64 " Y=%" PRId64 " X=%" PRId64
                        "): %.9g, want %.9g",
                        types, s.str().c_str(), b, r, ch, Y, X, double(got_u), double(want_u));
            }
  }
}

void test_upstream_grad_ff() { check_upstream_grad<float, float>("<float,float>"); }
void test_upstream_grad_fd() { check_upstream_grad<float, double>("<float,double>"); }
void test_upstream_grad_dd() { check_upstream_grad<double, double>("<double,double>"); }

template <typename T, typename Acc>
void check_window_stats(const char* types) {
  std::mt19937_64 rng(sizeof(T) * 31 + sizeof(Acc) * 7);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  const double eps = std::numeric_limits<Acc>::epsilon();
  for (int c = 0; c < 1500; ++c) {
    const int64_t n = pick(2, 8);
    const int64_t h = n + pick(0, 5), w = n + pick(0, 5);
    // Regimes: centred, offset (one-pass formulas cancel), nearly constant, far offset
    // (1e4 x the spread: only sums about the shift keep dmean's digits).
    const int regime = static_cast<int>(pick(0, 3));
    const double offset = regime == 0 ? 0.0 : regime == 3 ? 1e4 : double(pick(-20, 20));
    const double spread = regime == 2 ? 1e-3 : 1.0;
    const auto plane = sr_test::random_vector<T>(rng, h * w, offset - spread, offset + spread);
    // Half the windows may overhang the bottom/right border, where the plane reads 0.
    const int64_t over = regime != 3 && pick(0, 1) ? n - 1 : 0;
    const int64_t y = pick(0, h - n + over), x = pick(0, w - n + over);
    std::vector<LD> vals;
    LD maxabs = 0;
    for (int64_t u = 0; u < n; ++u)
      for (int64_t v = 0; v < n; ++v) {
        const bool inside = y + u < h && x + v < w;
        vals.push_back(inside ? LD(plane[static_cast<size_t>((y + u) * w + x + v)]) : LD(0));
        maxabs = std::max(maxabs, std::fabs(vals.back()));
      }
    LD want_mean, want_var;
    brute_stats(vals, &want_mean, &want_var);
    Acc shift = Acc(-99), dmean = Acc(-99), var = Acc(-99);
    sr::window_stats<T, Acc>(plane.data(), h, w, y, x, n, &shift, &dmean, &var);
    CHECK(double(shift) == double(plane[static_cast<size_t>(y * w + x)]));
    const Acc mean = shift + dmean;
    const double N = double(n * n);
    // About the shift the sums see |v - shift| <= 2 * spread (no overhang), else maxabs.
    const double tol_mean = (N + 2) * eps * double(maxabs);
    const double tol_dmean = over ? 2 * tol_mean : 2 * (N + 2) * eps * 2 * spread;
    CHECK_MSG(sr_test::near(double(dmean), double(want_mean - LD(shift)), tol_dmean),
              "%s n=%" PRId64 " regime %d: dmean %.17g, want %.17g", types, n, regime, double(dmean),
              double(want_mean - LD(shift)));
    const double tol_var = 4 * (N + 4) * eps * double(want_var) + 4 * N * tol_dmean * tol_dmean / (N - 1);
    CHECK_MSG(sr_test::near(double(mean), double(want_mean), tol_mean + eps * double(std::fabs(want_mean))),
              "%s n=%" PRId64 " at (%" PRId64 ", %" PRId64 ") of %" PRId64 "x%" PRId64
              " regime %d: mean %.17g, want %.17g",
              types, n, y, x, h, w, regime, double(mean), double(want_mean));
    CHECK_MSG(sr_test::near(double(var), double(want_var), tol_var),
              "%s n=%" PRId64 " at (%" PRId64 ", %" PRId64 ") of %" PRId64 "x%" PRId64
              " regime %d: var %.17g, want %.17g (tol %.3g)",
              types, n, y, x, h, w, regime, double(var), double(want_var), tol_var);
  }
}

void test_window_stats_ff() { check_window_stats<float, float>("<float,float>"); }
void test_window_stats_fd() { check_window_stats<float, double>("<float,double>"); }
void test_window_stats_dd() { check_window_stats<double, double>("<double,double>"); }

template <typename Acc>
void check_adapn_affine(const char* type) {
  std::mt19937_64 rng(sizeof(Acc) * 1234);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  const double aeps = std::numeric_limits<Acc>::epsilon();
  static const double kEps[] = {1e-5, 0.1};
  int64_t constant = 0;
  for (int c = 0; c < 2000; ++c) {
    const int64_t p = pick(2, 3), S = pick(1, 3), P = S * p;
    const double eps = kEps[c % 2];
    // Every 4th region 1e4 from 0: (z - shift) * alpha + beta must not lose its digits.
    const double zoff = c % 4 == 3 ? 1e4 : double(pick(-3, 3));
    auto z = random_patch(rng, P * P, zoff, std::exp(double(pick(-3, 1))));
    const auto q = random_patch(rng, p * p, double(pick(-3, 3)), std::exp(double(pick(-3, 1))));
    if (c % 50 == 0) {  // a constant region: var_z = 0, only eps keeps it finite
      std::fill(z.begin(), z.end(), z[0]);
      ++constant;
    }
    // Inputs rounded to Acc first, so the reference sees exactly what the header sees.
    std::vector<LD> zl, ql;
    for (double v : z) zl.push_back(LD(Acc(v)));
    for (double v : q) ql.push_back(LD(Acc(v)));
    LD mz, vz, mq, vq;
    brute_stats(zl, &mz, &vz);
    brute_stats(ql, &mq, &vq);
    // The statistics as window_stats gives them: about the region's first value.
    const Acc shift = Acc(zl[0]), a_dz = Acc(mz - zl[0]), a_vz = Acc(vz), a_mq = Acc(mq), a_vq = Acc(vq);
    Acc alpha = Acc(-99), beta = Acc(-99);
    sr::adapn_affine<Acc>(a_dz, a_vz, a_mq, a_vq, Acc(eps), &alpha, &beta);
    // Reference from the Acc-rounded statistics, in long double.
    const LD E = LD(Acc(eps));
    const LD want_alpha = std::sqrt(LD(a_vq) + E) / std::sqrt(LD(a_vz) + E);
    const LD want_beta = LD(a_mq) - LD(a_dz) * want_alpha;
    CHECK_MSG(sr_test::near(double(alpha), double(want_alpha), 8 * aeps * double(want_alpha)),
              "%s case %d eps=%g: alpha %.17g, want %.17g", type, c, eps, double(alpha), double(want_alpha));
    CHECK_MSG(sr_test::near(double(beta), double(want_beta),
                            8 * aeps * double(std::fabs(LD(a_mq)) + std::fabs(LD(a_dz) * want_alpha))),
              "%s case %d eps=%g: beta %.17g, want %.17g", type, c, eps, double(beta), double(want_beta));
    // (z - shift) * alpha + beta against the AdaPN formula, elementwise, to the rounding
    // of the centred terms: no |z| * alpha in the tolerance.
    for (size_t e = 0; e < zl.size(); ++e) {
      const Acc zv = Acc(zl[e]);
      const Acc got = (zv - shift) * alpha + beta;
      const LD want = (LD(zv) - (LD(shift) + LD(a_dz))) / std::sqrt(LD(a_vz) + E) * std::sqrt(LD(a_vq) + E) + LD(a_mq);
      const double scale = double(std::fabs(LD(zv) - LD(shift)) * want_alpha + std::fabs(want_beta) + std::fabs(want) +
                                  std::fabs(LD(a_mq)));
      CHECK_MSG(sr_test::near(double(got), double(want), 16 * aeps * scale),
                "%s case %d eps=%g element %zu: %.17g, want %.17g", type, c, eps, e, double(got), double(want));
    }
  }
  CHECK(constant >= 20);
}

void test_adapn_affine_float() { check_adapn_affine<float>("float"); }
void test_adapn_affine_double() { check_adapn_affine<double>("double"); }

// The normalised patch has the query's mean and the variance
// var_z * (var_q + eps) / (var_z + eps): a property of AdaPN, checked on the header's
// (alpha, beta) with statistics from the header's window_stats.
void test_adapn_output_statistics() {
  std::mt19937_64 rng(5150);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int c = 0; c < 500; ++c) {
    const int64_t p = pick(2, 3), P = pick(1, 3) * p;
    const double eps = c % 2 ? 0.1 : 1e-5;
    const auto z = random_patch(rng, P * P, double(pick(-3, 3)), 1.0);
    const auto q = random_patch(rng, p * p, double(pick(-3, 3)), 0.5);
    double sz, dz, vz, sq, dq, vq;
    sr::window_stats<double, double>(z.data(), P, P, 0, 0, P, &sz, &dz, &vz);
    sr::window_stats<double, double>(q.data(), p, p, 0, 0, p, &sq, &dq, &vq);
    const double mq = sq + dq;
    double alpha, beta;
    sr::adapn_affine<double>(dz, vz, mq, vq, eps, &alpha, &beta);
    std::vector<double> out;
    for (double v : z) out.push_back((v - sz) * alpha + beta);
    double mo, vo;
    brute_stats_d(out, &mo, &vo);
    const double want_var = vz * (vq + eps) / (vz + eps);
    CHECK_MSG(sr_test::near(mo, mq, 1e-12 * (1 + std::fabs(mq))), "case %d: output mean %.17g, query mean %.17g", c, mo,
              mq);
    CHECK_MSG(sr_test::near(vo, want_var, 1e-11 * (1 + want_var)), "case %d: output var %.17g, want %.17g", c, vo,
              want_var);
  }
}

// Central difference of f at step h, Richardson-extrapolated (error O(h^4)).
template <typename F>
double richardson(F f, double h) {
  const double d1 = (f(h) - f(-h)) / (2 * h);
  const double d2 = (f(h / 2) - f(-h / 2)) / h;
  return (4 * d2 - d1) / 3;
}

void test_adapn_grad_finite_differences() {
  std::mt19937_64 rng(20240611);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  static const double kEps[] = {1e-5, 0.1};
  int64_t cases = 0, q_checks = 0, z_checks = 0;
  for (int64_t n = 4; n <= 6; ++n)
    for (int64_t p = 2; p <= 3; ++p)
      for (double eps : kEps)
        for (int rep = 0; rep < 12; ++rep) {
          // Regimes: unit-scale data; offset means (mean_z enters the gradient);
          // small spreads; a nearly constant query patch (eps dominates var_q).
          const double zoff = rep % 3 == 0 ? 0.0 : 3 * u(rng);
          const double qoff = rep % 4 == 1 ? 0.0 : 3 * u(rng);
          const double zspread = rep % 5 == 2 ? 0.05 : 1.0;
          const double qspread = rep % 6 == 5 ? 1e-3 : (rep % 5 == 3 ? 0.1 : 1.0);
          auto z = random_patch(rng, n * n, zoff, zspread);
          auto q = random_patch(rng, p * p, qoff, qspread);
          const auto g = random_patch(rng, n * n, 0.0, 1.0);
          const int64_t Nz = n * n, Nq = p * p;
          // Analytic side: statistics and (alpha, d_alpha, d_beta) written out here,
          // the reduction to (c1, c2, q coefficients) from the header.
          double mz, vz, mq, vq;
          brute_stats_d(z, &mz, &vz);
          brute_stats_d(q, &mq, &vq);
          const double alpha = std::sqrt(vq + eps) / std::sqrt(vz + eps);
          const double shift = z[0];  // as window_stats picks it
          double d_alpha = 0, d_beta = 0;
          for (int64_t e = 0; e < Nz; ++e) {
            d_alpha += g[e] * (z[e] - shift);
            d_beta += g[e];
          }
          const sr::AdapnGrad<double> ag =
              sr::adapn_grad<double>(mz - shift, vz, vq, eps, alpha, d_alpha, d_beta, Nz, Nq);
          std::vector<double> gz(Nz), gq(Nq), fz(Nz), fq(Nq);
          for (int64_t e = 0; e < Nz; ++e) gz[e] = g[e] * alpha + ag.c1 + ag.c2 * (z[e] - shift);
          for (int64_t e = 0; e < Nq; ++e) gq[e] = ag.q_mean_coef + ag.q_var_coef * (q[e] - mq);
          // Numeric side: steps scaled to the patch spreads (the loss bends on the scale
          // of sqrt(var + eps)).
          const double hz = 1e-3 * std::min(1.0, std::sqrt(vz + eps));
          const double hq = 1e-3 * std::min(1.0, std::sqrt(vq + eps));
          for (int64_t e = 0; e < Nz; ++e)
            fz[e] = richardson(
                [&](double h) {
                  auto zz = z;
                  zz[e] += h;
                  return brute_adapn_loss(zz, q, g, eps);
                },
                hz);
          for (int64_t e = 0; e < Nq; ++e)
            fq[e] = richardson(
                [&](double h) {
                  auto qq = q;
                  qq[e] += h;
                  return brute_adapn_loss(z, qq, g, eps);
                },
                hq);
          // Relative to the largest component of each gradient.
          double sz = 0, sq = 0;
          for (double v : fz) sz = std::max(sz, std::fabs(v));
          for (double v : fq) sq = std::max(sq, std::fabs(v));
          char what[160];
          std::snprintf(what, sizeof what, "n=%" PRId64 " p=%" PRId64 " eps=%g rep=%d (var_z %.3g, var_q %.3g)", n, p,
                        eps, rep, vz, vq);
          for (int64_t e = 0; e < Nz; ++e, ++z_checks)
            CHECK_MSG(sr_test::near(gz[e], fz[e], 1e-6 * sz + 1e-12),
                      "%s: dL/dz[%" PRId64 "] %.12g, finite differences %.12g (max %.3g)", what, e, gz[e], fz[e], sz);
          for (int64_t e = 0; e < Nq; ++e, ++q_checks)
            CHECK_MSG(sr_test::near(gq[e], fq[e], 1e-6 * sq + 1e-12),
                      "%s: dL/dq[%" PRId64 "] %.12g, finite differences %.12g (max %.3g)", what, e, gq[e], fq[e], sq);
          // Sanity of the reference itself: the region gradient sums to 0 (the loss
          // does not change when z shifts), the query gradient to d_beta (it shifts the
          // output by the same amount).
          double sum_fz = 0, sum_fq = 0;
          for (double v : fz) sum_fz += v;
          for (double v : fq) sum_fq += v;
          CHECK_MSG(sr_test::near(sum_fz, 0.0, 1e-7 * (sz * double(Nz) + 1)),
                    "%s: finite-difference dL/dz sums to %.3g", what, sum_fz);
          CHECK_MSG(sr_test::near(sum_fq, d_beta, 1e-7 * (sq * double(Nq) + 1)),
                    "%s: finite-difference dL/dq sums to %.12g, want %.12g", what, sum_fq, d_beta);
          ++cases;
        }
  CHECK_MSG(cases == 3 * 2 * 2 * 12 && z_checks > 2000 && q_checks > 500,
            "coverage: %" PRId64 " cases, %" PRId64 " z checks, %" PRId64 " q checks", cases, z_checks, q_checks);
}

// The float instantiation (what the GPU accumulates in) agrees with the double one.
void test_adapn_grad_float() {
  std::mt19937_64 rng(31337);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (int c = 0; c < 2000; ++c) {
    const int64_t n = 4 + c % 3, p = 2 + c % 2, Nz = n * n, Nq = p * p;
    const double eps = c % 4 < 2 ? 1e-5 : 0.1;
    const double mz = 2 * u(rng), vz = 0.05 + std::fabs(u(rng)), vq = 0.05 + std::fabs(u(rng));
    const double d_alpha = 5 * u(rng), d_beta = 5 * u(rng);
    // Inputs exactly representable in float, so both see the same values.
    const float fmz = float(mz), fvz = float(vz), fvq = float(vq), fda = float(d_alpha), fdb = float(d_beta),
                fe = float(eps);
    const float falpha = std::sqrt(fvq + fe) / std::sqrt(fvz + fe);
    const sr::AdapnGrad<float> gf = sr::adapn_grad<float>(fmz, fvz, fvq, fe, falpha, fda, fdb, Nz, Nq);
    const sr::AdapnGrad<double> gd = sr::adapn_grad<double>(fmz, fvz, fvq, fe, double(falpha), fda, fdb, Nz, Nq);
    const double scale = std::fabs(gd.c1) + std::fabs(gd.c2) * (std::fabs(mz) + 1) + std::fabs(gd.q_mean_coef) +
                         std::fabs(gd.q_var_coef);
    const double tol = 1e-5 * scale;
    CHECK_MSG(sr_test::near(gf.c1, gd.c1, tol) && sr_test::near(gf.c2, gd.c2, tol) &&
                  sr_test::near(gf.q_mean_coef, gd.q_mean_coef, tol) &&
                  sr_test::near(gf.q_var_coef, gd.q_var_coef, tol),
              "case %d: float (%g, %g, %g, %g) vs double (%g, %g, %g, %g)", c, gf.c1, gf.c2, gf.q_mean_coef,
              gf.q_var_coef, gd.c1, gd.c2, gd.q_mean_coef, gd.q_var_coef);
  }
}

}  // namespace

int main() {
  return sr_test::run({
      {"graph_agg_dims", test_dims},
      {"region_origin", test_region_origin},
      {"regions_start_inside", test_regions_start_inside},
      {"hr_count", test_hr_count},
      {"upstream_grad<float,float>", test_upstream_grad_ff},
      {"upstream_grad<float,double>", test_upstream_grad_fd},
      {"upstream_grad<double,double>", test_upstream_grad_dd},
      {"window_stats<float,float>", test_window_stats_ff},
      {"window_stats<float,double>", test_window_stats_fd},
      {"window_stats<double,double>", test_window_stats_dd},
      {"adapn_affine<float>", test_adapn_affine_float},
      {"adapn_affine<double>", test_adapn_affine_double},
      {"adapn_output_statistics", test_adapn_output_statistics},
      {"adapn_grad_finite_differences", test_adapn_grad_finite_differences},
      {"adapn_grad<float>", test_adapn_grad_float},
  });
}
