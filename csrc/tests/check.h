// Minimal test harness for the torch-free kernel unit tests (no framework needed).
//
//   CHECK(cond)                 record a failure (file:line + expression) if !cond
//   CHECK_MSG(cond, fmt, ...)   same, plus a printf-style detail line
//   CHECK_NEAR(a, b, tol)       |a - b| <= tol, printing both values on failure
//   return sr_test::run({{"name", fn}, ...});   from main(): 0 iff every test passed
//
// A failing check does not abort its test, so one run shows every broken case (the
// first kMaxPrinted failures are printed, the rest only counted). A test function
// that performs no checks at all counts as failed, so a loop that silently never
// runs cannot pass.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <random>
#include <utility>
#include <vector>

namespace sr_test {

struct Counters {
  int64_t checks = 0;
  int64_t failures = 0;
};

inline Counters& counters() {
  static Counters c;
  return c;
}

constexpr int64_t kMaxPrinted = 20;

// Returns true when the failure should be printed (the first kMaxPrinted of them).
inline bool record(bool ok, const char* file, int line, const char* expr) {
  Counters& c = counters();
  ++c.checks;
  if (ok) return false;
  ++c.failures;
  if (c.failures > kMaxPrinted) return false;
  std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, expr);
  return true;
}

inline bool near(double a, double b, double tol) {
  return std::fabs(a - b) <= tol;  // false for NaN, as it should be
}

// Central difference of loss() in the input v (restored afterwards); loss returns a wide
// type (long double) so the step h = 1e-6 does not drown in its rounding.
template <typename Loss>
double central_difference(double& v, Loss&& loss, double h = 1e-6) {
  const double v0 = v;
  v = v0 + h;
  const auto up = loss();
  v = v0 - h;
  const auto down = loss();
  v = v0;
  return double((up - down) / (2 * h));
}

using TestFn = void (*)();

inline int run(std::initializer_list<std::pair<const char*, TestFn>> tests) {
  int failed_tests = 0;
  for (const auto& [name, fn] : tests) {
    const Counters before = counters();
    std::printf("[ RUN  ] %s\n", name);
    std::fflush(stdout);
    fn();
    const int64_t checks = counters().checks - before.checks;
    const int64_t failures = counters().failures - before.failures;
    if (checks == 0) {
      std::fprintf(stderr, "%s: performed no checks\n", name);
      ++failed_tests;
      std::printf("[ FAIL ] %s (no checks ran)\n", name);
    } else if (failures > 0) {
      ++failed_tests;
      std::printf("[ FAIL ] %s (%lld of %lld checks failed)\n", name, static_cast<long long>(failures),
                  static_cast<long long>(checks));
    } else {
      std::printf("[  OK  ] %s (%lld checks)\n", name, static_cast<long long>(checks));
    }
  }
  if (counters().failures > kMaxPrinted) {
    std::fprintf(stderr, "(%lld further failures not printed)\n",
                 static_cast<long long>(counters().failures - kMaxPrinted));
  }
  std::printf("%s: %d of %d tests failed\n", failed_tests ? "FAILED" : "PASSED", failed_tests,
              static_cast<int>(tests.size()));
  return failed_tests ? 1 : 0;
}

// Deterministic uniform [lo, hi) data; the seed is fixed so failures reproduce.
template <typename T>
std::vector<T> random_vector(std::mt19937_64& rng, int64_t n, double lo = -1.0, double hi = 1.0) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<T>(dist(rng));
  return v;
}

}  // namespace sr_test

#define CHECK(cond)                                                      \
  do {                                                                   \
    sr_test::record(static_cast<bool>(cond), __FILE__, __LINE__, #cond); \
  } while (0)

#define CHECK_MSG(cond, ...)                                                   \
  do {                                                                         \
    if (sr_test::record(static_cast<bool>(cond), __FILE__, __LINE__, #cond)) { \
      std::fprintf(stderr, "    ");                                            \
      std::fprintf(stderr, __VA_ARGS__);                                       \
      std::fprintf(stderr, "\n");                                              \
    }                                                                          \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                                    \
  do {                                                                                                           \
    const double sr_a_ = static_cast<double>(a), sr_b_ = static_cast<double>(b);                                 \
    const double sr_t_ = static_cast<double>(tol);                                                               \
    if (sr_test::record(sr_test::near(sr_a_, sr_b_, sr_t_), __FILE__, __LINE__, "|" #a " - " #b "| <= " #tol)) { \
      std::fprintf(stderr, "    %.17g vs %.17g (diff %.3g, tol %.3g)\n", sr_a_, sr_b_, std::fabs(sr_a_ - sr_b_), \
                   sr_t_);                                                                                       \
    }                                                                                                            \
  } while (0)
