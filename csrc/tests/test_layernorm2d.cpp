// Unit tests for csrc/kernels/layernorm2d.h. The brute-force side computes the contract
// in long double with textbook formulas (never calling into sr::), and the gradients are
// checked against central finite differences of that brute-force forward.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/layernorm2d.h"
#include "tests/check.h"

namespace {

using LD = long double;

struct Shape {
  int64_t B, C, HW;
  double eps;
  int64_t n() const { return B * C * HW; }
  std::string str() const {
    char buf[96];
    std::snprintf(buf, sizeof buf, "B=%" PRId64 " C=%" PRId64 " HW=%" PRId64 " eps=%g", B, C, HW, eps);
    return buf;
  }
};

std::vector<Shape> shapes() {
  std::vector<Shape> s = {
      {1, 64, 16, 1e-6},  // NAFNet width
      {2, 1, 5, 1e-6},    // C = 1: every output is the bias
      {2, 3, 130, 0.3},   // three tiles, the last partial; large eps
      {3, 7, 1, 0.0},     // one pixel, eps 0
  };
  std::mt19937_64 rng(3);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int i = 0; i < 20; ++i) s.push_back({pick(1, 3), pick(1, 9), pick(1, 150), 1e-5});
  return s;
}

int64_t at(const Shape& s, int64_t b, int64_t c, int64_t p) { return (b * s.C + c) * s.HW + p; }

std::vector<LD> brute_forward(const std::vector<double>& x, const std::vector<double>& w,
                              const std::vector<double>& bias, const Shape& s) {
  std::vector<LD> y(s.n());
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t p = 0; p < s.HW; ++p) {
      LD mu = 0, var = 0;
      for (int64_t c = 0; c < s.C; ++c) mu += x[at(s, b, c, p)];
      mu /= s.C;
      for (int64_t c = 0; c < s.C; ++c) var += (x[at(s, b, c, p)] - mu) * (x[at(s, b, c, p)] - mu);
      var /= s.C;
      for (int64_t c = 0; c < s.C; ++c)
        y[at(s, b, c, p)] = (x[at(s, b, c, p)] - mu) / std::sqrt(var + s.eps) * w[c] + bias[c];
    }
  return y;
}

// The kernel under test, tile by tile as the CPU kernel drives it.
template <typename T, typename Acc>
std::vector<T> tile_forward(const std::vector<T>& x, const std::vector<T>& w, const std::vector<T>& bias,
                            const Shape& s) {
  std::vector<T> y(s.n(), T(-99));
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t p0 = 0; p0 < s.HW; p0 += sr::kLn2dTile) {
      const int64_t off = at(s, b, 0, p0);
      sr::ln2d_tile_fwd<T, Acc>(x.data() + off, w.data(), bias.data(), y.data() + off, s.C, s.HW,
                                std::min(sr::kLn2dTile, s.HW - p0), Acc(s.eps));
    }
  return y;
}

// Pixel by pixel, as the CUDA kernel drives it.
template <typename T, typename Acc>
std::vector<T> pixel_forward(const std::vector<T>& x, const std::vector<T>& w, const std::vector<T>& bias,
                             const Shape& s) {
  std::vector<T> y(s.n(), T(-99));
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t p = 0; p < s.HW; ++p)
      sr::ln2d_pixel_fwd<T, Acc>(x.data() + at(s, b, 0, p), w.data(), bias.data(), y.data() + at(s, b, 0, p), s.C, s.HW,
                                 Acc(s.eps));
  return y;
}

struct Grads {
  std::vector<double> gx, gw, gb;
};

Grads tile_backward(const std::vector<double>& g, const std::vector<double>& x, const std::vector<double>& w,
                    const Shape& s) {
  Grads r{std::vector<double>(s.n(), -99), std::vector<double>(s.C, 0), std::vector<double>(s.C, 0)};
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t p0 = 0; p0 < s.HW; p0 += sr::kLn2dTile) {
      const int64_t off = at(s, b, 0, p0);
      sr::ln2d_tile_bwd<double, double>(g.data() + off, x.data() + off, w.data(), r.gx.data() + off, r.gw.data(),
                                        r.gb.data(), s.C, s.HW, std::min(sr::kLn2dTile, s.HW - p0), s.eps);
    }
  return r;
}

// Pixel by pixel (the CUDA kernel's dL/dx), the weight sums from the returned stats.
Grads pixel_backward(const std::vector<double>& g, const std::vector<double>& x, const std::vector<double>& w,
                     const Shape& s) {
  Grads r{std::vector<double>(s.n(), -99), std::vector<double>(s.C, 0), std::vector<double>(s.C, 0)};
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t p = 0; p < s.HW; ++p) {
      double dm, rstd;  // the mean is x[channel 0] + dm (shifted sums)
      sr::ln2d_pixel_bwd<double, double>(g.data() + at(s, b, 0, p), x.data() + at(s, b, 0, p), w.data(),
                                         r.gx.data() + at(s, b, 0, p), s.C, s.HW, s.eps, &dm, &rstd);
      for (int64_t c = 0; c < s.C; ++c) {
        r.gw[c] += g[at(s, b, c, p)] * sr::ln2d_dev(x[at(s, b, c, p)], x[at(s, b, 0, p)], dm) * rstd;
        r.gb[c] += g[at(s, b, c, p)];
      }
    }
  return r;
}

std::vector<double> features(std::mt19937_64& rng, int64_t n, double offset, double spread) {
  auto v = sr_test::random_vector<double>(rng, n, -1.0, 1.0);
  for (auto& e : v) e = offset + spread * e;
  return v;
}

template <typename T, typename Acc>
void check_forward(const char* types, double tol) {
  std::mt19937_64 rng(21);
  for (const Shape& s : shapes()) {
    const auto x = features(rng, s.n(), 1.5, 2.0), w = features(rng, s.C, 1.0, 0.5), b = features(rng, s.C, 0.0, 0.3);
    const auto want = brute_forward(x, w, b, s);
    const std::vector<T> xt(x.begin(), x.end()), wt(w.begin(), w.end()), bt(b.begin(), b.end());
    const auto tiles = tile_forward<T, Acc>(xt, wt, bt, s);
    const auto pixels = pixel_forward<T, Acc>(xt, wt, bt, s);
    for (int64_t e = 0; e < s.n(); ++e) {
      const double t = tol * (1 + std::fabs(double(want[e])));
      CHECK_MSG(sr_test::near(double(tiles[e]), double(want[e]), t), "%s %s: tile y[%" PRId64 "] = %.17g, want %.17g",
                types, s.str().c_str(), e, double(tiles[e]), double(want[e]));
      CHECK_MSG(sr_test::near(double(pixels[e]), double(want[e]), t), "%s %s: pixel y[%" PRId64 "] = %.17g, want %.17g",
                types, s.str().c_str(), e, double(pixels[e]), double(want[e]));
    }
  }
}

void test_forward_double() { check_forward<double, double>("<double,double>", 1e-12); }
void test_forward_float() { check_forward<float, float>("<float,float>", 2e-5); }

// A large common offset: the one-pass variance would lose it all in float.
void test_large_mean_float() {
  std::mt19937_64 rng(9);
  const Shape s{1, 32, 70, 1e-6};
  const auto x = features(rng, s.n(), 1e3, 0.5), w = features(rng, s.C, 1.0, 0.5), b = features(rng, s.C, 0.0, 0.3);
  const std::vector<float> xt(x.begin(), x.end()), wt(w.begin(), w.end()), bt(b.begin(), b.end());
  const auto want = brute_forward(std::vector<double>(xt.begin(), xt.end()), std::vector<double>(wt.begin(), wt.end()),
                                  std::vector<double>(bt.begin(), bt.end()), s);
  const auto got = tile_forward<float, float>(xt, wt, bt, s);
  for (int64_t e = 0; e < s.n(); ++e) CHECK_NEAR(got[e], double(want[e]), 2e-3);
}

void test_backward_finite_differences() {
  std::mt19937_64 rng(77);
  int checked = 0;
  for (const Shape& s : shapes()) {
    if (s.n() > 1200) continue;
    ++checked;
    auto x = features(rng, s.n(), 0.5, 1.5), w = features(rng, s.C, 1.0, 0.5), b = features(rng, s.C, 0.0, 0.3);
    const auto g = sr_test::random_vector<double>(rng, s.n());
    const Grads tile = tile_backward(g, x, w, s), pixel = pixel_backward(g, x, w, s);
    auto loss = [&]() {
      const auto y = brute_forward(x, w, b, s);
      LD l = 0;
      for (int64_t e = 0; e < s.n(); ++e) l += g[e] * y[e];
      return l;
    };
    auto fd = [&](double& v) { return sr_test::central_difference(v, loss); };
    for (int64_t e = 0; e < s.n(); ++e) {
      const double want = fd(x[e]);
      CHECK_MSG(sr_test::near(tile.gx[e], want, 1e-6 * (1 + std::fabs(want))),
                "%s: tile grad_x[%" PRId64 "] = %.12g, finite difference %.12g", s.str().c_str(), e, tile.gx[e], want);
      CHECK_NEAR(pixel.gx[e], tile.gx[e], 1e-12 * (1 + std::fabs(want)));
    }
    for (int64_t c = 0; c < s.C; ++c) {
      const double ww = fd(w[c]), wb = fd(b[c]);
      CHECK_NEAR(tile.gw[c], ww, 1e-6 * (1 + std::fabs(ww)));
      CHECK_NEAR(tile.gb[c], wb, 1e-6 * (1 + std::fabs(wb)));
      CHECK_NEAR(pixel.gw[c], ww, 1e-6 * (1 + std::fabs(ww)));
      CHECK_NEAR(pixel.gb[c], wb, 1e-6 * (1 + std::fabs(wb)));
    }
  }
  CHECK_MSG(checked >= 10, "only %d shapes small enough", checked);
}

}  // namespace

int main() {
  return sr_test::run({
      {"forward<double,double>", test_forward_double},
      {"forward<float,float>", test_forward_float},
      {"large_mean<float>", test_large_mean_float},
      {"backward_finite_differences", test_backward_finite_differences},
  });
}
