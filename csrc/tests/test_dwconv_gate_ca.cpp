// Unit tests for csrc/kernels/dwconv_gate_ca.h. The depthwise conv is checked against a
// long-double brute force; the transposed conv and the weight gradient against the
// adjoint identities they must satisfy (<conv(x), g> = <x, conv_t(g)> = sum_t w_t dW_t),
// which a wrong index or flipped kernel breaks; the attention matvec and its transpose
// likewise; and the whole forward, assembled from the pieces, against the brute force.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/dwconv_gate_ca.h"
#include "tests/check.h"

namespace {

using LD = long double;

struct Plane {
  int64_t H, W, k;
};

std::vector<Plane> planes() {
  std::vector<Plane> v = {{1, 1, 3}, {1, 9, 3}, {1, 4, 5}, {5, 7, 3}, {6, 3, 5}, {8, 8, 3}, {2, 2, 5}, {4, 6, 1}};
  std::mt19937_64 rng(3);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int i = 0; i < 20; ++i) v.push_back({pick(1, 12), pick(1, 12), 2 * pick(0, 3) + 1});
  return v;
}

std::vector<double> randv(std::mt19937_64& rng, int64_t n) {
  std::normal_distribution<double> nd;
  std::vector<double> v(n);
  for (auto& e : v) e = nd(rng);
  return v;
}

LD brute_conv(const std::vector<double>& x, const std::vector<double>& w, LD bias, const Plane& p, int64_t h,
              int64_t c) {
  LD acc = bias;
  for (int64_t i = 0; i < p.k; ++i)
    for (int64_t j = 0; j < p.k; ++j) {
      const int64_t hh = h + i - p.k / 2, ww = c + j - p.k / 2;
      if (hh >= 0 && hh < p.H && ww >= 0 && ww < p.W) acc += LD(w[i * p.k + j]) * x[hh * p.W + ww];
    }
  return acc;
}

void test_conv_matches_brute_force() {
  std::mt19937_64 rng(1);
  for (const Plane& p : planes()) {
    const auto x = randv(rng, p.H * p.W), w = randv(rng, p.k * p.k);
    std::vector<double> row(p.W);
    for (int64_t h = 0; h < p.H; ++h) {
      sr::dgc_conv_row<double, double>(x.data(), w.data(), 0.25, p.H, p.W, p.k, h, row.data());
      for (int64_t c = 0; c < p.W; ++c) {
        const double want = double(brute_conv(x, w, 0.25, p, h, c));
        CHECK_NEAR(row[c], want, 1e-12);
        CHECK_NEAR((sr::dgc_conv_at<double, double>(x.data(), w.data(), 0.25, p.H, p.W, p.k, h, c)), want, 1e-12);
      }
    }
  }
}

void test_transposed_conv_and_weight_grad_are_adjoints() {
  std::mt19937_64 rng(2);
  for (const Plane& p : planes()) {
    const int64_t n = p.H * p.W, kk = p.k * p.k;
    const auto x = randv(rng, n), w = randv(rng, kk), g = randv(rng, n);
    LD lhs = 0, rhs_x = 0, rhs_w = 0, rhs_t = 0;
    std::vector<double> row(p.W), dw(kk, 0.0);
    for (int64_t h = 0; h < p.H; ++h) {
      sr::dgc_conv_t_row<double, double>(g.data(), w.data(), p.H, p.W, p.k, h, row.data());
      for (int64_t c = 0; c < p.W; ++c) {
        lhs += brute_conv(x, w, 0, p, h, c) * g[h * p.W + c];
        rhs_x += LD(x[h * p.W + c]) * row[c];
        rhs_t +=
            LD(x[h * p.W + c]) * sr::dgc_conv_t_at<double, double, double>(g.data(), w.data(), p.H, p.W, p.k, h, c);
      }
    }
    sr::dgc_weight_grad<double, double>(g.data(), x.data(), p.H, p.W, p.k, dw.data());
    for (int64_t t = 0; t < kk; ++t) rhs_w += LD(w[t]) * dw[t];
    const double tol = 1e-10 * (1 + double(std::fabs(lhs)));
    CHECK_NEAR(double(rhs_x), double(lhs), tol);
    CHECK_NEAR(double(rhs_t), double(lhs), tol);
    CHECK_NEAR(double(rhs_w), double(lhs), tol);
  }
}

void test_attention_and_its_transpose() {
  std::mt19937_64 rng(4);
  for (int64_t Cg : {1, 2, 5, 16}) {
    const auto cw = randv(rng, Cg * Cg), cb = randv(rng, Cg), s = randv(rng, Cg), ga = randv(rng, Cg);
    LD lhs = 0, rhs = 0;
    for (int64_t o = 0; o < Cg; ++o) {
      LD want = cb[o];
      for (int64_t i = 0; i < Cg; ++i) want += LD(cw[o * Cg + i]) * s[i];
      const double a = sr::dgc_attention<double, double>(cw.data(), cb.data(), s.data(), Cg, o);
      CHECK_NEAR(a, double(want), 1e-12);
      lhs += (LD(a) - cb[o]) * ga[o];
      rhs += LD(s[o]) * sr::dgc_pool_grad<double, double>(cw.data(), ga.data(), Cg, o);
    }
    CHECK_NEAR(double(lhs), double(rhs), 1e-10);
  }
}

// The whole forward as the CPU kernel assembles it, against the brute force.
void test_forward_composite() {
  std::mt19937_64 rng(5);
  for (bool gate : {true, false}) {
    for (const Plane& p : planes()) {
      const int64_t C = 4, Cg = gate ? 2 : 4, n = p.H * p.W, kk = p.k * p.k;
      sr::DgcDims d{1, C, p.H, p.W, p.k, gate};
      CHECK(sr::dgc_out_channels(d) == Cg && sr::dgc_groups(d) == Cg && sr::dgc_plane(d) == n);
      const auto x = randv(rng, C * n), w = randv(rng, C * kk), b = randv(rng, C);
      const auto cw = randv(rng, Cg * Cg), cb = randv(rng, Cg);
      std::vector<LD> y(Cg * n), s(Cg, 0);
      std::vector<double> ys(Cg * n), ss(Cg, 0.0), r1(p.W), r2(p.W);
      for (int64_t c = 0; c < Cg; ++c) {
        const std::vector<double> x1(x.begin() + c * n, x.begin() + (c + 1) * n);
        const std::vector<double> w1(w.begin() + c * kk, w.begin() + (c + 1) * kk);
        std::vector<double> x2 = x1, w2 = w1;
        if (gate) {
          x2.assign(x.begin() + (c + Cg) * n, x.begin() + (c + Cg + 1) * n);
          w2.assign(w.begin() + (c + Cg) * kk, w.begin() + (c + Cg + 1) * kk);
        }
        for (int64_t h = 0; h < p.H; ++h) {
          sr::dgc_conv_row<double, double>(x1.data(), w1.data(), b[c], p.H, p.W, p.k, h, r1.data());
          if (gate) sr::dgc_conv_row<double, double>(x2.data(), w2.data(), b[c + Cg], p.H, p.W, p.k, h, r2.data());
          for (int64_t e = 0; e < p.W; ++e) {
            LD u = brute_conv(x1, w1, b[c], p, h, e);
            if (gate) u *= brute_conv(x2, w2, b[c + Cg], p, h, e);
            y[c * n + h * p.W + e] = u;
            s[c] += u / n;
            ys[c * n + h * p.W + e] = gate ? r1[e] * r2[e] : r1[e];
            ss[c] += ys[c * n + h * p.W + e] / double(n);
          }
        }
      }
      for (int64_t o = 0; o < Cg; ++o) {
        LD a = cb[o];
        for (int64_t i = 0; i < Cg; ++i) a += LD(cw[o * Cg + i]) * s[i];
        const double ag = sr::dgc_attention<double, double>(cw.data(), cb.data(), ss.data(), Cg, o);
        for (int64_t e = 0; e < n; ++e) {
          const LD want = y[o * n + e] * a;
          CHECK_MSG(sr_test::near(ys[o * n + e] * ag, double(want), 1e-9 * (1 + std::fabs(double(want)))),
                    "H=%lld W=%lld k=%lld gate=%d", (long long)p.H, (long long)p.W, (long long)p.k, int(gate));
        }
      }
    }
  }
}

}  // namespace

int main() {
  return sr_test::run({
      {"conv_matches_brute_force", test_conv_matches_brute_force},
      {"transposed_conv_and_weight_grad_are_adjoints", test_transposed_conv_and_weight_grad_are_adjoints},
      {"attention_and_its_transpose", test_attention_and_its_transpose},
      {"forward_composite", test_forward_composite},
  });
}
