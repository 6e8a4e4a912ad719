// Unit tests for csrc/kernels/adapn.h. The brute-force side computes the contract in
// long double with textbook formulas (never calling into sr::), and the gradients are
// checked against central finite differences of that brute-force forward, so a wrong
// derivation cannot hide in both.
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/adapn.h"
#include "tests/check.h"

namespace {

using LD = long double;

struct Shape {
  int64_t N, k, C, PP, pp;
  double eps;
  int64_t nz() const { return N * k * C * PP; }
  int64_t nq() const { return N * C * pp; }
  std::string str() const {
    char buf[128];
    std::snprintf(buf, sizeof buf, "N=%" PRId64 " k=%" PRId64 " C=%" PRId64 " PP=%" PRId64 " pp=%" PRId64 " eps=%g", N,
                  k, C, PP, pp, eps);
    return buf;
  }
};

std::vector<Shape> shapes() {
  std::vector<Shape> s = {
      {1, 5, 2, 36, 9, 1e-5},  // IGNN: 6x6 neighbours, 3x3 queries
      {2, 1, 1, 4, 4, 1e-5},   // k = 1, C = 1, P = p = 2
      {3, 3, 2, 2, 2, 0.3},    // two values per patch (the minimum), large eps
      {1, 2, 3, 25, 49, 0.0},  // query larger than the neighbours, eps 0
      {2, 0, 2, 9, 9, 1e-5},   // k = 0: nothing to normalise, query grad 0
  };
  std::mt19937_64 rng(8);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int i = 0; i < 30; ++i) s.push_back({pick(1, 3), pick(1, 5), pick(1, 4), pick(2, 40), pick(2, 40), 1e-3});
  return s;
}

// Brute-force layout: z[((n*k + r)*C + c)*PP + e], q[(n*C + c)*pp + e].
int64_t zi(const Shape& s, int64_t n, int64_t r, int64_t c, int64_t e) { return ((n * s.k + r) * s.C + c) * s.PP + e; }
int64_t qi(const Shape& s, int64_t n, int64_t c, int64_t e) { return (n * s.C + c) * s.pp + e; }

void brute_stats(const std::vector<double>& x, int64_t off, int64_t n, LD* mean, LD* var) {
  LD sum = 0;
  for (int64_t e = 0; e < n; ++e) sum += x[off + e];
  *mean = sum / n;
  LD ss = 0;
  for (int64_t e = 0; e < n; ++e) ss += (x[off + e] - *mean) * (x[off + e] - *mean);
  *var = ss / (n - 1);
}

std::vector<LD> brute_forward(const std::vector<double>& z, const std::vector<double>& q, const Shape& s) {
  std::vector<LD> out(s.nz());
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t c = 0; c < s.C; ++c) {
      LD mq, vq;
      brute_stats(q, qi(s, n, c, 0), s.pp, &mq, &vq);
      for (int64_t r = 0; r < s.k; ++r) {
        LD mz, vz;
        brute_stats(z, zi(s, n, r, c, 0), s.PP, &mz, &vz);
        for (int64_t e = 0; e < s.PP; ++e)
          out[zi(s, n, r, c, e)] = (z[zi(s, n, r, c, e)] - mz) / std::sqrt(vz + s.eps) * std::sqrt(vq + s.eps) + mq;
      }
    }
  return out;
}

// The kernel under test, group by group as the CPU kernel drives it.
template <typename T, typename Acc>
std::vector<T> kernel_forward(const std::vector<T>& z, const std::vector<T>& q, const Shape& s) {
  const sr::AdapnDims d{s.N, s.k, s.C, s.PP, s.pp};
  std::vector<T> out(s.nz());
  for (int64_t g = 0; g < sr::adapn_groups(d); ++g) {
    const int64_t off = sr::adapn_neighbor_offset(d, g, 0);
    sr::adapn_group_fwd<T, Acc>(z.data() + off, q.data() + sr::adapn_query_offset(d, g), out.data() + off, s.k,
                                s.C * s.PP, s.PP, s.pp, Acc(s.eps));
  }
  return out;
}

template <typename T, typename Acc>
void kernel_backward(const std::vector<T>& g, const std::vector<T>& z, const std::vector<T>& q, const Shape& s,
                     std::vector<T>* gz, std::vector<T>* gq) {
  const sr::AdapnDims d{s.N, s.k, s.C, s.PP, s.pp};
  gz->assign(s.nz(), T(-99));
  gq->assign(s.nq(), T(-99));
  for (int64_t grp = 0; grp < sr::adapn_groups(d); ++grp) {
    const int64_t off = sr::adapn_neighbor_offset(d, grp, 0), qoff = sr::adapn_query_offset(d, grp);
    sr::adapn_group_bwd<T, Acc>(g.data() + off, z.data() + off, q.data() + qoff, gz->data() + off, gq->data() + qoff,
                                s.k, s.C * s.PP, s.PP, s.pp, Acc(s.eps));
  }
}

// Inputs with an offset and a spread that differ per patch, as feature maps have.
std::vector<double> features(std::mt19937_64& rng, int64_t n, double offset, double spread) {
  auto v = sr_test::random_vector<double>(rng, n, -1.0, 1.0);
  for (auto& x : v) x = offset + spread * x;
  return v;
}

// ---------------------------------------------------------------------- tests ----

void test_offsets() {
  for (const Shape& s : shapes()) {
    const sr::AdapnDims d{s.N, s.k, s.C, s.PP, s.pp};
    CHECK(sr::adapn_groups(d) == s.N * s.C);
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t c = 0; c < s.C; ++c) {
        CHECK(sr::adapn_query_offset(d, n * s.C + c) == qi(s, n, c, 0));
        for (int64_t r = 0; r < s.k; ++r) CHECK(sr::adapn_neighbor_offset(d, n * s.C + c, r) == zi(s, n, r, c, 0));
      }
  }
}

// The sums run about the patch's first value, so their rounding scales with the spread,
// not the offset: the centred mean (mean - x[0]) stays within tol_mean even at 1e4 and
// n = 1000, where a plain float sum of the raw values drifts by more than the spread.
template <typename T>
void check_moments(double tol_mean, double tol_var) {
  std::mt19937_64 rng(4);
  for (int64_t n : {2, 3, 9, 36, 49, 1000}) {
    for (double offset : {0.0, 3.0, 1e4}) {  // 1e4: the one-pass formula would lose it all
      const auto x = features(rng, n, offset, 0.5);
      const std::vector<T> xt(x.begin(), x.end());
      // The exact statistics of the values as rounded to T.
      LD mean, var;
      brute_stats(std::vector<double>(xt.begin(), xt.end()), 0, n, &mean, &var);
      const auto m = sr::patch_moments<T, T>(xt.data(), n);
      CHECK(double(m.shift) == double(xt[0]));
      CHECK_NEAR(double(m.dmean), double(mean - LD(xt[0])), tol_mean);
      CHECK_NEAR(double(sr::moments_mean(m)), double(mean), tol_mean * (1 + std::fabs(offset)));
      CHECK_NEAR(double(m.var), double(var), tol_var * double(var));
    }
  }
}

void test_moments_float() { check_moments<float>(1e-6, 1e-4); }
void test_moments_double() { check_moments<double>(1e-15, 1e-11); }

template <typename T, typename Acc>
void check_forward(const char* types, double tol) {
  std::mt19937_64 rng(21);
  for (const Shape& s : shapes()) {
    const auto z = features(rng, s.nz(), 1.5, 2.0), q = features(rng, s.nq(), -0.7, 0.4);
    const auto want = brute_forward(z, q, s);
    const auto got = kernel_forward<T, Acc>(std::vector<T>(z.begin(), z.end()), std::vector<T>(q.begin(), q.end()), s);
    for (int64_t e = 0; e < s.nz(); ++e)
      CHECK_MSG(sr_test::near(double(got[e]), double(want[e]), tol * (1 + std::fabs(double(want[e])))),
                "%s %s: out[%" PRId64 "] = %.17g, want %.17g", types, s.str().c_str(), e, double(got[e]),
                double(want[e]));
  }
}

void test_forward_double() { check_forward<double, double>("<double,double>", 1e-12); }
void test_forward_float() { check_forward<float, float>("<float,float>", 2e-5); }
void test_forward_float_double_acc() { check_forward<float, double>("<float,double>", 1e-6); }

// The output really carries the query's statistics: its mean is mean_q, and its
// variance var_q + eps scaled by var_z / (var_z + eps).
void test_output_statistics() {
  std::mt19937_64 rng(5);
  for (const Shape& s : shapes()) {
    const auto z = features(rng, s.nz(), 4.0, 3.0), q = features(rng, s.nq(), 1.0, 0.2);
    const auto out = kernel_forward<double, double>(z, q, s);
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t c = 0; c < s.C; ++c)
        for (int64_t r = 0; r < s.k; ++r) {
          LD mo, vo, mq, vq, mz, vz;
          brute_stats(out, zi(s, n, r, c, 0), s.PP, &mo, &vo);
          brute_stats(q, qi(s, n, c, 0), s.pp, &mq, &vq);
          brute_stats(z, zi(s, n, r, c, 0), s.PP, &mz, &vz);
          CHECK_NEAR(double(mo), double(mq), 1e-12);
          CHECK_NEAR(double(vo), double((vq + s.eps) * vz / (vz + s.eps)), 1e-11);
        }
  }
}

// Backward vs central differences of L = sum(w * brute_forward(z, q)), in double.
void test_backward_finite_differences() {
  std::mt19937_64 rng(77);
  int checked = 0;
  for (const Shape& s : shapes()) {
    if (s.nz() + s.nq() > 1500) continue;
    ++checked;
    auto z = features(rng, s.nz(), 0.5, 1.5), q = features(rng, s.nq(), -2.0, 0.8);
    const auto w = sr_test::random_vector<double>(rng, s.nz());
    std::vector<double> gz, gq;
    kernel_backward<double, double>(w, z, q, s, &gz, &gq);
    auto loss = [&]() {
      const auto out = brute_forward(z, q, s);
      LD l = 0;
      for (int64_t e = 0; e < s.nz(); ++e) l += w[e] * out[e];
      return l;
    };
    auto fd = [&](double& v) { return sr_test::central_difference(v, loss); };
    for (int64_t e = 0; e < s.nz(); ++e)
      CHECK_MSG(sr_test::near(gz[e], fd(z[e]), 1e-6 * (1 + std::fabs(gz[e]))),
                "%s: grad_neighbors[%" PRId64 "] = %.12g, finite difference %.12g", s.str().c_str(), e, gz[e],
                fd(z[e]));
    for (int64_t e = 0; e < s.nq(); ++e)
      CHECK_MSG(sr_test::near(gq[e], fd(q[e]), 1e-6 * (1 + std::fabs(gq[e]))),
                "%s: grad_query[%" PRId64 "] = %.12g, finite difference %.12g", s.str().c_str(), e, gq[e], fd(q[e]));
  }
  CHECK_MSG(checked >= 10, "only %d shapes small enough", checked);
}

// float in, float accumulation: close to the double kernel.
void test_backward_float() {
  std::mt19937_64 rng(13);
  for (const Shape& s : shapes()) {
    const auto z = features(rng, s.nz(), 0.5, 1.5), q = features(rng, s.nq(), -2.0, 0.8);
    const auto w = sr_test::random_vector<double>(rng, s.nz());
    std::vector<double> gz, gq;
    kernel_backward<double, double>(w, z, q, s, &gz, &gq);
    std::vector<float> fz, fq;
    kernel_backward<float, float>(std::vector<float>(w.begin(), w.end()), std::vector<float>(z.begin(), z.end()),
                                  std::vector<float>(q.begin(), q.end()), s, &fz, &fq);
    for (int64_t e = 0; e < s.nz(); ++e) CHECK_NEAR(fz[e], gz[e], 1e-4 * (1 + std::fabs(gz[e])));
    for (int64_t e = 0; e < s.nq(); ++e) CHECK_NEAR(fq[e], gq[e], 1e-3 * (1 + std::fabs(gq[e])));
  }
}

}  // namespace

int main() {
  return sr_test::run({
      {"offsets", test_offsets},
      {"moments<float>", test_moments_float},
      {"moments<double>", test_moments_double},
      {"forward<double,double>", test_forward_double},
      {"forward<float,float>", test_forward_float},
      {"forward<float,double>", test_forward_float_double_acc},
      {"output_statistics", test_output_statistics},
      {"backward_finite_differences", test_backward_finite_differences},
      {"backward<float,float>", test_backward_float},
  });
}
