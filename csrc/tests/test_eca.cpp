// Unit tests for csrc/kernels/eca.h. The brute-force side computes the contract in long
// double (pool, zero-padded conv1d, sigmoid, multiply) without calling into sr::, and the
// gradients are checked against central finite differences of that brute-force forward.
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/eca.h"
#include "tests/check.h"

namespace {

using LD = long double;

struct Shape {
  int64_t B, C, HW, k;
  int64_t n() const { return B * C * HW; }
  std::string str() const {
    char buf[96];
    std::snprintf(buf, sizeof buf, "B=%" PRId64 " C=%" PRId64 " HW=%" PRId64 " k=%" PRId64, B, C, HW, k);
    return buf;
  }
};

std::vector<Shape> shapes() {
  std::vector<Shape> s = {
      {1, 64, 16, 3},  // RT4KSR
      {2, 1, 5, 3},    // C = 1
      {2, 3, 7, 7},    // k > C
      {3, 5, 1, 1},    // one pixel, k = 1
  };
  std::mt19937_64 rng(5);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int i = 0; i < 20; ++i) s.push_back({pick(1, 3), pick(1, 12), pick(1, 40), 2 * pick(0, 3) + 1});
  return s;
}

std::vector<LD> brute_forward(const std::vector<double>& x, const std::vector<double>& w, const Shape& s) {
  std::vector<LD> y(s.n());
  const int64_t r = s.k / 2;
  for (int64_t b = 0; b < s.B; ++b) {
    std::vector<LD> mean(s.C, 0);
    for (int64_t c = 0; c < s.C; ++c) {
      for (int64_t p = 0; p < s.HW; ++p) mean[c] += x[(b * s.C + c) * s.HW + p];
      mean[c] /= s.HW;
    }
    for (int64_t c = 0; c < s.C; ++c) {
      LD a = 0;
      for (int64_t j = 0; j < s.k; ++j)
        if (c + j - r >= 0 && c + j - r < s.C) a += w[j] * mean[c + j - r];
      const LD gate = 1 / (1 + std::exp(-a));
      for (int64_t p = 0; p < s.HW; ++p) y[(b * s.C + c) * s.HW + p] = x[(b * s.C + c) * s.HW + p] * gate;
    }
  }
  return y;
}

// The three steps as the CPU kernel drives them.
template <typename T, typename Acc>
std::vector<T> kernel_forward(const std::vector<T>& x, const std::vector<T>& w, const Shape& s) {
  std::vector<Acc> mean(s.B * s.C), gate(s.B * s.C);
  for (int64_t pl = 0; pl < s.B * s.C; ++pl)
    mean[pl] = sr::eca_plane_sum<T, Acc>(x.data() + pl * s.HW, s.HW) / Acc(s.HW);
  for (int64_t b = 0; b < s.B; ++b)
    sr::eca_image_gates<T, Acc>(mean.data() + b * s.C, w.data(), gate.data() + b * s.C, s.C, s.k);
  std::vector<T> y(s.n());
  for (int64_t e = 0; e < s.n(); ++e) y[e] = T(Acc(x[e]) * gate[e / s.HW]);
  return y;
}

void kernel_backward(const std::vector<double>& g, const std::vector<double>& x, const std::vector<double>& w,
                     const Shape& s, std::vector<double>* gx, std::vector<double>* gw) {
  std::vector<double> mean(s.B * s.C), t(s.B * s.C), gate(s.B * s.C), ds(s.B * s.C), da(s.C);
  gw->assign(s.k, 0.0);
  for (int64_t pl = 0; pl < s.B * s.C; ++pl) {
    mean[pl] = sr::eca_plane_sum<double, double>(x.data() + pl * s.HW, s.HW) / double(s.HW);
    t[pl] = sr::eca_plane_dot<double, double>(g.data() + pl * s.HW, x.data() + pl * s.HW, s.HW);
  }
  for (int64_t b = 0; b < s.B; ++b)
    sr::eca_image_bwd<double, double>(mean.data() + b * s.C, t.data() + b * s.C, w.data(), gate.data() + b * s.C,
                                      da.data(), ds.data() + b * s.C, gw->data(), s.C, s.k, s.HW);
  gx->resize(s.n());
  for (int64_t e = 0; e < s.n(); ++e) (*gx)[e] = g[e] * gate[e / s.HW] + ds[e / s.HW];
}

template <typename T, typename Acc>
void check_forward(const char* types, double tol) {
  std::mt19937_64 rng(21);
  for (const Shape& s : shapes()) {
    const auto x = sr_test::random_vector<double>(rng, s.n(), -2.0, 3.0);
    const auto w = sr_test::random_vector<double>(rng, s.k, -1.5, 1.5);
    const auto want = brute_forward(x, w, s);
    const auto got = kernel_forward<T, Acc>(std::vector<T>(x.begin(), x.end()), std::vector<T>(w.begin(), w.end()), s);
    for (int64_t e = 0; e < s.n(); ++e)
      CHECK_MSG(sr_test::near(double(got[e]), double(want[e]), tol * (1 + std::fabs(double(want[e])))),
                "%s %s: y[%" PRId64 "] = %.17g, want %.17g", types, s.str().c_str(), e, double(got[e]),
                double(want[e]));
  }
}

void test_forward_double() { check_forward<double, double>("<double,double>", 1e-13); }
void test_forward_float() { check_forward<float, float>("<float,float>", 2e-6); }

void test_backward_finite_differences() {
  std::mt19937_64 rng(77);
  for (const Shape& s : shapes()) {
    auto x = sr_test::random_vector<double>(rng, s.n(), -2.0, 3.0);
    auto w = sr_test::random_vector<double>(rng, s.k, -1.5, 1.5);
    const auto g = sr_test::random_vector<double>(rng, s.n());
    std::vector<double> gx, gw;
    kernel_backward(g, x, w, s, &gx, &gw);
    auto loss = [&]() {
      const auto y = brute_forward(x, w, s);
      LD l = 0;
      for (int64_t e = 0; e < s.n(); ++e) l += g[e] * y[e];
      return l;
    };
    auto fd = [&](double& v) { return sr_test::central_difference(v, loss); };
    for (int64_t e = 0; e < s.n(); ++e) {
      const double want = fd(x[e]);
      CHECK_MSG(sr_test::near(gx[e], want, 1e-6 * (1 + std::fabs(want))),
                "%s: grad_x[%" PRId64 "] = %.12g, finite difference %.12g", s.str().c_str(), e, gx[e], want);
    }
    for (int64_t j = 0; j < s.k; ++j) {
      const double want = fd(w[j]);
      CHECK_MSG(sr_test::near(gw[j], want, 1e-6 * (1 + std::fabs(want))),
                "%s: grad_w[%" PRId64 "] = %.12g, finite difference %.12g", s.str().c_str(), j, gw[j], want);
    }
  }
}

}  // namespace

int main() {
  return sr_test::run({
      {"forward<double,double>", test_forward_double},
      {"forward<float,float>", test_forward_float},
      {"backward_finite_differences", test_backward_finite_differences},
  });
}
