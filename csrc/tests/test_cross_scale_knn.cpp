// Unit tests for csrc/kernels/cross_scale_knn.h (the per-query math shared by the CPU
// and CUDA cross_scale_knn kernels), checked against brute force that only uses the
// contract in docs/design.md:
//   grids     p x p patches, stride t: m = (n - p) // t + 1 positions along an axis
//             (0 when n < p); key patch (a, b) has flat number a * n2 + b;
//   window    w1 = min(window, n1), a0 = clamp(i // scale - window // 2, 0, n1 - w1)
//             (likewise w2, b0 from j); window <= 0 means every key patch;
//   result    the k smallest squared L2 distances, ascending, ties to the smaller
//             index; unused slots of the running top-k stay (+inf, INT64_MAX).
// The brute-force side never calls into sr::, so a bug in the header cannot hide in
// both.
#include <algorithm>
#include <array>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cross_scale_knn.h"
#include "tests/check.h"

namespace {

constexpr int64_t kEmptyIdx = std::numeric_limits<int64_t>::max();
constexpr int64_t kGuardIdx = -7;  // written past the k slots; must survive every call

// ---------------------------------------------------------------- brute force ----

int64_t brute_grid_len(int64_t n, int64_t p, int64_t t) {
  int64_t m = 0;
  while (t * m + p <= n) ++m;
  return m;
}

// a // b for a >= 0, b >= 1, by counting.
int64_t brute_floor_div(int64_t a, int64_t b) {
  int64_t q = 0;
  while ((q + 1) * b <= a) ++q;
  return q;
}

// Window extent along an axis with n key positions.
int64_t brute_extent(int64_t window, int64_t n) {
  if (window <= 0) return n;
  return window < n ? window : n;
}

// The contract's a0: among the admissible starts [0, n - w] the one nearest to
// i // S - window // 2 (that is what clamping an integer to an interval gives).
// No window: the single start 0.
int64_t brute_window_start(int64_t i, int64_t S, int64_t window, int64_t n) {
  if (window <= 0) return 0;
  const int64_t w = brute_extent(window, n);
  const int64_t target = brute_floor_div(i, S) - brute_floor_div(window, 2);
  int64_t best = 0;
  for (int64_t a = 1; a <= n - w; ++a)
    if (std::llabs(a - target) < std::llabs(best - target)) best = a;
  return best;
}

template <typename T>
using Cand = std::pair<T, int64_t>;  // (distance, key index)

// Full stable sort by (distance, index), truncated to k; NaN distances after all others.
template <typename T>
std::vector<Cand<T>> brute_topk(std::vector<Cand<T>> all, int64_t k) {
  std::stable_sort(all.begin(), all.end(), [](const Cand<T>& x, const Cand<T>& y) {
    const bool xn = std::isnan(x.first), yn = std::isnan(y.first);
    if (xn != yn) return yn;
    if (!xn && x.first < y.first) return true;
    if (!xn && y.first < x.first) return false;
    return x.second < y.second;
  });
  if (static_cast<int64_t>(all.size()) > k) all.resize(static_cast<size_t>(k));
  return all;
}

template <typename T>
bool is_empty_slot(T dist, int64_t idx) {
  return std::isnan(dist) && idx == kEmptyIdx;
}

// Equal distances, or both NaN.
template <typename T>
bool same_dist(T a, T b) {
  return a == b || (std::isnan(a) && std::isnan(b));
}

// A running top-k buffer with two guard slots after the k real ones.
template <typename T>
struct TopK {
  int64_t k;
  std::vector<T> dist;
  std::vector<int64_t> idx;
  explicit TopK(int64_t k_) : k(k_), dist(k_ + 2, T(-7)), idx(k_ + 2, kGuardIdx) {}
  bool guards_intact() const {
    return dist[k] == T(-7) && dist[k + 1] == T(-7) && idx[k] == kGuardIdx && idx[k + 1] == kGuardIdx;
  }
};

// Compares a finished top-k buffer with the brute-force answer: the first
// want.size() slots equal it, the rest are still empty, the guards are untouched.
template <typename T>
void check_topk_equals(const TopK<T>& got, const std::vector<Cand<T>>& want, const std::string& what) {
  const int64_t nw = static_cast<int64_t>(want.size());
  for (int64_t s = 0; s < got.k; ++s) {
    if (s < nw) {
      CHECK_MSG(same_dist(got.dist[s], want[s].first) && got.idx[s] == want[s].second,
                "%s: slot %" PRId64 " = (%.9g, %" PRId64 "), want (%.9g, %" PRId64 ")", what.c_str(), s,
                double(got.dist[s]), got.idx[s], double(want[s].first), want[s].second);
    } else {
      CHECK_MSG(is_empty_slot(got.dist[s], got.idx[s]),
                "%s: slot %" PRId64 " = (%.9g, %" PRId64 "), want empty (NaN, INT64_MAX)", what.c_str(), s,
                double(got.dist[s]), got.idx[s]);
    }
  }
  CHECK_MSG(got.guards_intact(), "%s: wrote past slot k-1", what.c_str());
}

// Random (dist, idx) streams; every mode has many exact distance ties.
template <typename T>
std::vector<Cand<T>> random_stream(std::mt19937_64& rng, int64_t len, int mode) {
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  static const double kTieSet[] = {0.0, -0.0, 0.5, 1.0, 1.0, 2.0, 3.25};
  std::vector<Cand<T>> s(static_cast<size_t>(len));
  // Distinct indices, as a real query's candidates are (modes 0, 2-5).
  std::vector<int64_t> distinct(static_cast<size_t>(4 * len + 10));
  std::iota(distinct.begin(), distinct.end(), int64_t(0));
  std::shuffle(distinct.begin(), distinct.end(), rng);
  for (int64_t e = 0; e < len; ++e) {
    T d;
    int64_t i = distinct[e];
    switch (mode) {
      case 0:  // few distinct distances
        d = T(kTieSet[pick(0, 6)]);
        break;
      case 1:  // few distances and few indices: repeated (dist, idx) pairs too
        d = T(kTieSet[pick(0, 3)]);
        i = pick(0, 5);
        break;
      case 2:  // all distances equal: pure index order
        d = T(1.5);
        break;
      case 3:  // continuous distances, some ties, +inf, NaN, indices near INT64_MAX
        d = pick(0, 3) == 0 ? T(kTieSet[pick(0, 6)]) : T(std::uniform_real_distribution<double>(0.0, 4.0)(rng));
        if (pick(0, 9) == 0) d = std::numeric_limits<T>::infinity();
        if (pick(0, 11) == 0) d = std::numeric_limits<T>::quiet_NaN();
        if (pick(0, 9) == 0) i = kEmptyIdx - 1 - distinct[e];
        break;
      default:  // modes 4, 5: ties, visited in ascending / descending index order
        d = T(kTieSet[pick(0, 6)]);
        break;
    }
    s[e] = {d, i};
  }
  if (mode == 4) std::sort(s.begin(), s.end(), [](const Cand<T>& x, const Cand<T>& y) { return x.second < y.second; });
  if (mode == 5) std::sort(s.begin(), s.end(), [](const Cand<T>& x, const Cand<T>& y) { return x.second > y.second; });
  return s;
}

// ---------------------------------------------------------------------- tests ----

void check_dims_case(int64_t B, int64_t C, int64_t H, int64_t W, int64_t Hk, int64_t Wk, int64_t P, int64_t T,
                     int64_t S, int64_t window) {
  const sr::KnnDims d = sr::knn_dims(B, C, H, W, Hk, Wk, P, T, S, window);
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "H=%" PRId64 " W=%" PRId64 " Hk=%" PRId64 " Wk=%" PRId64 " P=%" PRId64 " T=%" PRId64 " S=%" PRId64
                " window=%" PRId64,
                H, W, Hk, Wk, P, T, S, window);
  CHECK_MSG(
      d.B == B && d.C == C && d.H == H && d.W == W && d.Hk == Hk && d.Wk == Wk && d.P == P && d.T == T && d.S == S,
      "%s: pass-through fields", buf);
  const int64_t m1 = brute_grid_len(H, P, T), m2 = brute_grid_len(W, P, T);
  const int64_t n1 = brute_grid_len(Hk, P, T), n2 = brute_grid_len(Wk, P, T);
  CHECK_MSG(d.m1 == m1 && d.m2 == m2 && d.n1 == n1 && d.n2 == n2,
            "%s: grids %" PRId64 "x%" PRId64 ", %" PRId64 "x%" PRId64 "; want %" PRId64 "x%" PRId64 ", %" PRId64
            "x%" PRId64,
            buf, d.m1, d.m2, d.n1, d.n2, m1, m2, n1, n2);
  const int64_t w1 = brute_extent(window, n1), w2 = brute_extent(window, n2);
  CHECK_MSG(d.w1 == w1 && d.w2 == w2, "%s: w1=%" PRId64 " w2=%" PRId64 ", want %" PRId64 " %" PRId64, buf, d.w1, d.w2,
            w1, w2);
  if (window > 0) {
    CHECK_MSG(d.half == brute_floor_div(window, 2), "%s: half=%" PRId64, buf, d.half);
  } else {
    // No window: whatever half is, the window must start at 0 for every query.
    for (int64_t i = 0; i < m1 + 3; ++i)
      CHECK_MSG(sr::window_start(i, S, d.half, d.n1, d.w1) == 0,
                "%s: no window, row start for i=%" PRId64 " is %" PRId64, buf, i,
                sr::window_start(i, S, d.half, d.n1, d.w1));
    for (int64_t j = 0; j < m2 + 3; ++j)
      CHECK_MSG(sr::window_start(j, S, d.half, d.n2, d.w2) == 0,
                "%s: no window, column start for j=%" PRId64 " is %" PRId64, buf, j,
                sr::window_start(j, S, d.half, d.n2, d.w2));
  }
}

void test_knn_dims() {
  // Named regimes.
  check_dims_case(1, 64, 32, 40, 16, 20, 3, 2, 2, 30);  // IGNN-like, window > key grid
  check_dims_case(1, 64, 96, 96, 48, 48, 3, 2, 2, 30);  // window < key grid
  check_dims_case(2, 3, 20, 20, 10, 10, 3, 1, 2, 8);    // window == key grid (n1 = 8)
  check_dims_case(2, 3, 20, 21, 10, 11, 3, 1, 2, 9);    // window == n2 but > n1
  check_dims_case(1, 1, 9, 9, 5, 5, 3, 2, 2, 0);        // window 0: none
  check_dims_case(1, 1, 9, 9, 5, 5, 3, 2, 2, -1);       // window < 0: none
  check_dims_case(1, 1, 9, 9, 5, 5, 3, 2, 2, -30);
  check_dims_case(1, 1, 9, 9, 2, 2, 3, 2, 2, 5);  // key smaller than a patch
  check_dims_case(1, 1, 2, 2, 9, 9, 3, 2, 2, 5);  // query smaller than a patch
  check_dims_case(1, 1, 7, 7, 7, 7, 1, 1, 1, 1);  // window 1, scale 1
  check_dims_case(1, 1, 7, 7, 7, 7, 7, 3, 1, 4);  // single patch each
  // Exhaustive-ish sweep.
  std::mt19937_64 rng(314159);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  int bigger = 0, none = 0, inside = 0;
  for (int c = 0; c < 4000; ++c) {
    const int64_t P = pick(1, 5), T = pick(1, 4), S = pick(1, 4);
    const int64_t H = pick(0, 30), W = pick(0, 30), Hk = pick(0, 20), Wk = pick(0, 20);
    const int64_t window = pick(-3, 24);
    const int64_t n1 = brute_grid_len(Hk, P, T);
    if (window <= 0)
      ++none;
    else if (window > n1)
      ++bigger;
    else
      ++inside;
    check_dims_case(pick(1, 4), pick(1, 8), H, W, Hk, Wk, P, T, S, window);
  }
  CHECK_MSG(bigger > 100 && none > 100 && inside > 100, "sweep regimes: window > n1 %d, none %d, inside %d", bigger,
            none, inside);
}

void check_start(int64_t i, int64_t S, int64_t window, int64_t n, int* low, int* high, int* mid) {
  const int64_t w = brute_extent(window, n);
  const int64_t half = window > 0 ? brute_floor_div(window, 2) : 0;
  const int64_t want = brute_window_start(i, S, window, n);
  const int64_t got = sr::window_start(i, S, half, n, w);
  CHECK_MSG(got == want,
            "i=%" PRId64 " S=%" PRId64 " window=%" PRId64 " n=%" PRId64 ": start %" PRId64 ", want %" PRId64, i, S,
            window, n, got, want);
  CHECK_MSG(got >= 0 && got + w <= n,
            "i=%" PRId64 " S=%" PRId64 " window=%" PRId64 " n=%" PRId64 ": window [%" PRId64 ", %" PRId64
            ") leaves [0, n)",
            i, S, window, n, got, got + w);
  if (window > 0) {
    const int64_t target = brute_floor_div(i, S) - brute_floor_div(window, 2);
    if (target < 0)
      ++*low;
    else if (target > n - w)
      ++*high;
    else
      ++*mid;
  }
}

void test_window_start() {
  int low = 0, high = 0, mid = 0;
  for (int64_t n = 0; n <= 18; ++n)
    for (int64_t S = 1; S <= 4; ++S)
      for (int64_t window = -2; window <= n + 3; ++window)
        for (int64_t i = 0; i <= 4 * (n + 2); ++i) check_start(i, S, window, n, &low, &high, &mid);
  // Long axes, sampled.
  std::mt19937_64 rng(2718);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int c = 0; c < 200; ++c) {
    const int64_t n = pick(1, 20000), S = pick(1, 8);
    const int64_t window = pick(0, 3) == 0 ? pick(-5, 0) : pick(1, 2 * n);
    check_start(pick(0, S * (n + 50)), S, window, n, &low, &high, &mid);
    check_start(0, S, window, n, &low, &high, &mid);
    check_start(S * n + S - 1, S, window, n, &low, &high, &mid);
  }
  CHECK_MSG(low > 100 && high > 100 && mid > 100, "clamping regimes: low %d, high %d, interior %d", low, high, mid);
}

template <typename T>
void check_topk_reset(const char* type) {
  for (int64_t k = 0; k <= 8; ++k) {
    TopK<T> t(k);
    for (int64_t s = 0; s < k; ++s) {
      t.dist[s] = T(s) - T(3);
      t.idx[s] = s * 11 - 5;
    }
    sr::topk_reset(t.dist.data(), t.idx.data(), k);
    for (int64_t s = 0; s < k; ++s)
      CHECK_MSG(is_empty_slot(t.dist[s], t.idx[s]), "%s k=%" PRId64 ": slot %" PRId64 " = (%g, %" PRId64 ")", type, k,
                s, double(t.dist[s]), t.idx[s]);
    CHECK_MSG(t.guards_intact(), "%s k=%" PRId64 ": topk_reset wrote past k", type, k);
  }
}

void test_topk_reset() {
  check_topk_reset<float>("float");
  check_topk_reset<double>("double");
}

template <typename T>
void check_topk_insert(const char* type) {
  std::mt19937_64 rng(sizeof(T) * 1000 + 17);
  int shorter = 0, longer = 0;
  for (int64_t k = 1; k <= 8; ++k)
    for (int mode = 0; mode <= 5; ++mode)
      for (int rep = 0; rep < 60; ++rep) {
        const int64_t len = std::uniform_int_distribution<int64_t>(0, 4 * k + 6)(rng);
        const auto stream = random_stream<T>(rng, len, mode);
        (len < k ? shorter : longer) += 1;
        TopK<T> t(k);
        sr::topk_reset(t.dist.data(), t.idx.data(), k);
        for (const auto& [d, i] : stream) sr::topk_insert(t.dist.data(), t.idx.data(), k, d, i);
        char what[96];
        std::snprintf(what, sizeof what, "%s k=%" PRId64 " mode=%d len=%" PRId64 " rep=%d", type, k, mode, len, rep);
        const auto want = brute_topk(stream, k);
        check_topk_equals(t, want, what);
        // The running buffer is already sorted: sort_topk must leave it alone.
        TopK<T> again = t;
        sr::sort_topk(again.dist.data(), again.idx.data(), k);
        check_topk_equals(again, want, std::string(what) + " (re-sorted)");
      }
  CHECK_MSG(shorter > 100 && longer > 100, "%s: streams shorter than k %d, longer %d", type, shorter, longer);
}

void test_topk_insert_float() { check_topk_insert<float>("float"); }
void test_topk_insert_double() { check_topk_insert<double>("double"); }

template <typename T>
void check_sort_topk(const char* type) {
  std::mt19937_64 rng(sizeof(T) * 77 + 3);
  for (int64_t k = 0; k <= 8; ++k)
    for (int mode = 0; mode <= 5; ++mode)
      for (int rep = 0; rep < 60; ++rep) {
        auto items = random_stream<T>(rng, k, mode);
        // Some empty slots mixed in, as a partly filled top-k has.
        for (auto& c : items)
          if (std::uniform_int_distribution<int>(0, 5)(rng) == 0) c = {std::numeric_limits<T>::quiet_NaN(), kEmptyIdx};
        TopK<T> t(k);
        for (int64_t s = 0; s < k; ++s) {
          t.dist[s] = items[s].first;
          t.idx[s] = items[s].second;
        }
        sr::sort_topk(t.dist.data(), t.idx.data(), k);
        const auto want = brute_topk(items, k);
        char what[96];
        std::snprintf(what, sizeof what, "%s k=%" PRId64 " mode=%d rep=%d", type, k, mode, rep);
        for (int64_t s = 0; s < k; ++s)
          CHECK_MSG(same_dist(t.dist[s], want[s].first) && t.idx[s] == want[s].second,
                    "%s: slot %" PRId64 " = (%.9g, %" PRId64 "), want (%.9g, %" PRId64 ")", what, s, double(t.dist[s]),
                    t.idx[s], double(want[s].first), want[s].second);
        CHECK_MSG(t.guards_intact(), "%s: sort_topk wrote past k", what);
      }
}

void test_sort_topk_float() { check_sort_topk<float>("float"); }
void test_sort_topk_double() { check_sort_topk<double>("double"); }

template <typename T>
void check_sq_dist(const char* type) {
  auto f = [](double qn, double cn, double dot) { return sr::sq_dist_from_dot<T>(T(qn), T(cn), T(dot)); };
  // Exactly representable cases: the formula itself, exactly.
  CHECK_MSG(f(5, 3, 1) == T(6), "%s: (5, 3, 1) -> %g", type, double(f(5, 3, 1)));
  CHECK_MSG(f(4, 9, 6) == T(1), "%s: q=2, c=3 -> %g", type, double(f(4, 9, 6)));
  CHECK_MSG(f(4, 9, -6) == T(25), "%s: q=2, c=-3 -> %g", type, double(f(4, 9, -6)));
  CHECK_MSG(f(0.25, 0, 0) == T(0.25), "%s: c=0 -> %g", type, double(f(0.25, 0, 0)));
  CHECK_MSG(f(1, 1, 1) == T(0), "%s: q == c -> %g", type, double(f(1, 1, 1)));
  CHECK_MSG(f(0, 0, 0) == T(0), "%s: zeros -> %g", type, double(f(0, 0, 0)));
  // Negative by cancellation: clamped to +0 (never negative, never -0).
  for (const auto& [qn, cn, dot] :
       std::vector<std::array<double, 3>>{{1, 1, 1.5}, {0, 0, 1e-3}, {2, 2, 2.0000004}, {10, 0.5, 100}, {0, 0, 1e30}}) {
    const T got = f(qn, cn, dot);
    CHECK_MSG(got == T(0) && !std::signbit(got), "%s: (%g, %g, %g) -> %g, want +0", type, qn, cn, dot, double(got));
  }
  // inf - inf (a patch holding inf): +inf, never a match.
  {
    const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
    for (const auto& [qn, cn, dot] : std::vector<std::array<T, 3>>{
             {inf, T(1), inf}, {T(1), inf, inf}, {nan, T(1), T(0)}, {T(1), T(1), nan}, {inf, T(1), T(0)}}) {
      const T got = sr::sq_dist_from_dot<T>(qn, cn, dot);
      CHECK_MSG(std::isinf(got) && got > T(0), "%s: (%g, %g, %g) -> %g, want +inf", type, double(qn), double(cn),
                double(dot), double(got));
    }
  }
  {
    const T one = T(1), up = std::nextafter(one, T(2));
    const T got = sr::sq_dist_from_dot<T>(one, one, up);
    CHECK_MSG(got == T(0) && !std::signbit(got), "%s: one ulp below 0 -> %g", type, double(got));
  }
  // Random vectors: close to the direct ||q - c||^2, never negative; and where the raw
  // expression goes negative through rounding (c a hair away from q), exactly 0.
  std::mt19937_64 rng(sizeof(T) + 606);
  int negatives = 0;
  for (int rep = 0; rep < 4000; ++rep) {
    const int64_t len = std::uniform_int_distribution<int64_t>(1, 64)(rng);
    auto q = sr_test::random_vector<T>(rng, len, -2.0, 2.0);
    auto c = sr_test::random_vector<T>(rng, len, -2.0, 2.0);
    if (rep % 2) {  // near-duplicate: heavy cancellation
      c = q;
      c[rep % len] = std::nextafter(c[rep % len], T(3));
    }
    T qn = 0, cn = 0, dot = 0;
    double direct = 0, scale = 0;
    for (int64_t e = 0; e < len; ++e) {
      qn += q[e] * q[e];
      cn += c[e] * c[e];
      dot += q[e] * c[e];
      const double diff = double(q[e]) - double(c[e]);
      direct += diff * diff;
      scale += double(q[e]) * q[e] + double(c[e]) * c[e];
    }
    const T got = sr::sq_dist_from_dot<T>(qn, cn, dot);
    const T raw = qn + cn - T(2) * dot;
    CHECK_MSG(got >= T(0) && !std::signbit(got), "%s rep=%d: %g < 0", type, rep, double(got));
    const double eps = std::numeric_limits<T>::epsilon();
    CHECK_MSG(sr_test::near(double(got), direct, double(4 * len + 8) * eps * (scale + 1)),
              "%s rep=%d len=%" PRId64 ": %.17g, direct %.17g", type, rep, len, double(got), direct);
    if (raw < T(0)) {
      ++negatives;
      CHECK_MSG(got == T(0), "%s rep=%d: raw %g, got %g, want 0", type, rep, double(raw), double(got));
    } else {
      const double tol = 4 * eps * double(qn + cn + 2 * std::fabs(dot));
      CHECK_MSG(sr_test::near(double(got), double(raw), tol), "%s rep=%d: %.17g, raw %.17g", type, rep, double(got),
                double(raw));
    }
  }
  CHECK_MSG(negatives > 20, "%s: only %d rounding-negative cases", type, negatives);
}

void test_sq_dist_float() { check_sq_dist<float>("float"); }
void test_sq_dist_double() { check_sq_dist<double>("double"); }

// ------------------------------------------------------------ end to end KNN ----

struct KnnCase {
  int64_t B, C, H, W, Hk, Wk, P, T, S, window, k;
  bool integer;  // small integer-valued features: exact distances, many ties
  std::string str() const {
    char buf[240];
    std::snprintf(buf, sizeof buf,
                  "B=%" PRId64 " C=%" PRId64 " H=%" PRId64 " W=%" PRId64 " Hk=%" PRId64 " Wk=%" PRId64 " P=%" PRId64
                  " T=%" PRId64 " S=%" PRId64 " window=%" PRId64 " k=%" PRId64 " %s",
                  B, C, H, W, Hk, Wk, P, T, S, window, k, integer ? "int" : "real");
    return buf;
  }
};

// Element (b, c, y, x) of a contiguous (B, C, h, w) map.
template <typename T>
T at(const std::vector<T>& map, int64_t C, int64_t h, int64_t w, int64_t b, int64_t c, int64_t y, int64_t x) {
  return map[static_cast<size_t>(((b * C + c) * h + y) * w + x)];
}

template <typename T>
std::vector<T> random_map(std::mt19937_64& rng, int64_t n, bool integer) {
  if (!integer) return sr_test::random_vector<T>(rng, n);
  std::vector<T> v(static_cast<size_t>(n));
  for (auto& x : v) x = T(std::uniform_int_distribution<int>(0, 2)(rng));
  return v;
}

// Fully independent: every key patch of the grid, an explicit window test, a sort.
template <typename T>
std::vector<Cand<T>> brute_query(const KnnCase& s, const std::vector<T>& qmap, const std::vector<T>& kmap, int64_t b,
                                 int64_t i, int64_t j) {
  const int64_t n1 = brute_grid_len(s.Hk, s.P, s.T), n2 = brute_grid_len(s.Wk, s.P, s.T);
  const int64_t a0 = brute_window_start(i, s.S, s.window, n1);
  const int64_t b0 = brute_window_start(j, s.S, s.window, n2);
  const int64_t w1 = brute_extent(s.window, n1), w2 = brute_extent(s.window, n2);
  std::vector<Cand<T>> all;
  for (int64_t a = 0; a < n1; ++a)
    for (int64_t bb = 0; bb < n2; ++bb) {
      const bool in_window = a0 <= a && a < a0 + w1 && b0 <= bb && bb < b0 + w2;
      if (!in_window) continue;
      T dist = 0;
      for (int64_t c = 0; c < s.C; ++c)
        for (int64_t py = 0; py < s.P; ++py)
          for (int64_t px = 0; px < s.P; ++px) {
            const T diff = at(qmap, s.C, s.H, s.W, b, c, s.T * i + py, s.T * j + px) -
                           at(kmap, s.C, s.Hk, s.Wk, b, c, s.T * a + py, s.T * bb + px);
            dist += diff * diff;
          }
      all.push_back({dist, a * n2 + bb});
    }
  return brute_topk(all, s.k);
}

// Distance as a kernel would compute it: from norms and a dot product via
// sq_dist_from_dot for the integer maps (exact there), directly in the brute force's
// summation order for real maps (so both sides round identically).
template <typename T>
T header_dist(const KnnCase& s, const std::vector<T>& qmap, const std::vector<T>& kmap, int64_t b, int64_t i, int64_t j,
              int64_t a, int64_t bb) {
  T qn = 0, cn = 0, dot = 0, direct = 0;
  for (int64_t c = 0; c < s.C; ++c)
    for (int64_t py = 0; py < s.P; ++py)
      for (int64_t px = 0; px < s.P; ++px) {
        const T qv = at(qmap, s.C, s.H, s.W, b, c, s.T * i + py, s.T * j + px);
        const T kv = at(kmap, s.C, s.Hk, s.Wk, b, c, s.T * a + py, s.T * bb + px);
        qn += qv * qv;
        cn += kv * kv;
        dot += qv * kv;
        direct += (qv - kv) * (qv - kv);
      }
  return s.integer ? sr::sq_dist_from_dot(qn, cn, dot) : direct;
}

std::vector<KnnCase> knn_cases() {
  std::vector<KnnCase> cases = {
      {1, 2, 13, 13, 7, 7, 3, 2, 2, 30, 5, true},   // IGNN-like: window > key grid
      {1, 2, 21, 21, 11, 11, 3, 2, 2, 3, 5, true},  // window 3 < n = 5: clamps both ends
      {2, 1, 17, 15, 9, 8, 3, 1, 2, 4, 4, true},    // even window, stride 1
      {1, 1, 12, 12, 12, 12, 2, 1, 1, 5, 8, true},  // scale 1
      {1, 3, 16, 16, 6, 6, 2, 2, 3, 2, 3, false},   // scale 3, real-valued
      {2, 2, 10, 11, 5, 6, 2, 1, 2, 0, 6, true},    // window 0: every key patch
      {1, 1, 10, 11, 5, 6, 2, 1, 2, -1, 7, false},  // window < 0: every key patch
      {1, 1, 9, 9, 5, 5, 3, 1, 2, 1, 1, true},      // window 1: one candidate
      {1, 1, 9, 9, 5, 5, 3, 1, 2, 1, 3, true},      // fewer candidates than k
      {1, 1, 9, 9, 2, 2, 3, 1, 2, 3, 2, true},      // empty key grid
      {1, 1, 2, 9, 5, 5, 3, 1, 2, 3, 2, true},      // empty query grid
      {1, 1, 8, 8, 8, 8, 1, 1, 1, 3, 8, true},      // 1x1 patches, all-tie heavy
  };
  std::mt19937_64 rng(8086);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  static const int64_t kWindows[] = {-1, 0, 1, 2, 3, 4, 5, 7, 30};
  for (int c = 0; c < 250; ++c) {
    const int64_t P = pick(1, 3), T = pick(1, 3), S = pick(1, 3);
    const int64_t H = P + pick(0, 14), W = P + pick(0, 14);
    const int64_t Hk = std::max<int64_t>(1, H / S + pick(-2, 3));
    const int64_t Wk = std::max<int64_t>(1, W / S + pick(-2, 3));
    cases.push_back({pick(1, 2), pick(1, 3), H, W, Hk, Wk, P, T, S, kWindows[pick(0, 8)], pick(1, 8), pick(0, 3) != 0});
  }
  return cases;
}

template <typename T>
void check_end_to_end(const char* type) {
  std::mt19937_64 rng(sizeof(T) * 5 + 1);
  int64_t queries = 0, short_queries = 0, clamped_low = 0, clamped_high = 0;
  for (const KnnCase& s : knn_cases()) {
    const auto qmap = random_map<T>(rng, s.B * s.C * s.H * s.W, s.integer);
    const auto kmap = random_map<T>(rng, s.B * s.C * s.Hk * s.Wk, s.integer);
    const sr::KnnDims d = sr::knn_dims(s.B, s.C, s.H, s.W, s.Hk, s.Wk, s.P, s.T, s.S, s.window);
    const int64_t m1 = brute_grid_len(s.H, s.P, s.T), m2 = brute_grid_len(s.W, s.P, s.T);
    const int64_t n1 = brute_grid_len(s.Hk, s.P, s.T), n2 = brute_grid_len(s.Wk, s.P, s.T);
    if (!(d.m1 == m1 && d.m2 == m2 && d.n1 == n1 && d.n2 == n2)) {
      CHECK_MSG(false, "%s %s: knn_dims grids disagree", type, s.str().c_str());
      continue;
    }
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t i = 0; i < d.m1; ++i)
        for (int64_t j = 0; j < d.m2; ++j) {
          const int64_t a0 = sr::window_start(i, s.S, d.half, d.n1, d.w1);
          const int64_t b0 = sr::window_start(j, s.S, d.half, d.n2, d.w2);
          if (!(a0 >= 0 && b0 >= 0 && a0 + d.w1 <= d.n1 && b0 + d.w2 <= d.n2 && d.w1 >= 0 && d.w2 >= 0)) {
            CHECK_MSG(false,
                      "%s %s q=(%" PRId64 ",%" PRId64 "): window rows [%" PRId64 ", +%" PRId64 ") cols [%" PRId64
                      ", +%" PRId64 ") outside the key grid",
                      type, s.str().c_str(), i, j, a0, d.w1, b0, d.w2);
            continue;
          }
          const auto want = brute_query(s, qmap, kmap, b, i, j);
          ++queries;
          if (static_cast<int64_t>(want.size()) < s.k) ++short_queries;
          if (s.window > 0 && n1 > s.window) {
            const int64_t target = i / s.S - s.window / 2;
            if (target < 0) ++clamped_low;
            if (target > n1 - s.window) ++clamped_high;
          }
          // Every candidate of the window, in row-major order and in reverse: the
          // running top-k must not depend on the visiting order.
          for (int pass = 0; pass < 2; ++pass) {
            TopK<T> t(s.k);
            sr::topk_reset(t.dist.data(), t.idx.data(), s.k);
            const int64_t count = d.w1 * d.w2;
            for (int64_t e = 0; e < count; ++e) {
              const int64_t r = pass == 0 ? e : count - 1 - e;
              const int64_t a = a0 + r / d.w2, bb = b0 + r % d.w2;
              sr::topk_insert(t.dist.data(), t.idx.data(), s.k, header_dist(s, qmap, kmap, b, i, j, a, bb),
                              a * d.n2 + bb);
            }
            char what[320];
            std::snprintf(what, sizeof what, "%s %s b=%" PRId64 " q=(%" PRId64 ",%" PRId64 ") %s", type,
                          s.str().c_str(), b, i, j, pass == 0 ? "forward" : "reversed");
            check_topk_equals(t, want, what);
          }
        }
  }
  CHECK_MSG(queries > 5000 && short_queries > 20 && clamped_low > 100 && clamped_high > 100,
            "%s: coverage queries %" PRId64 ", short %" PRId64 ", clamped low %" PRId64 ", high %" PRId64, type,
            queries, short_queries, clamped_low, clamped_high);
}

void test_end_to_end_float() { check_end_to_end<float>("float"); }
void test_end_to_end_double() { check_end_to_end<double>("double"); }

}  // namespace

int main() {
  return sr_test::run({
      {"knn_dims", test_knn_dims},
      {"window_start", test_window_start},
      {"topk_reset", test_topk_reset},
      {"topk_insert<float>", test_topk_insert_float},
      {"topk_insert<double>", test_topk_insert_double},
      {"sort_topk<float>", test_sort_topk_float},
      {"sort_topk<double>", test_sort_topk_double},
      {"sq_dist_from_dot<float>", test_sq_dist_float},
      {"sq_dist_from_dot<double>", test_sq_dist_double},
      {"end_to_end<float>", test_end_to_end_float},
      {"end_to_end<double>", test_end_to_end_double},
  });
}
