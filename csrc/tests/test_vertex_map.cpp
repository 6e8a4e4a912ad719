// Unit tests for csrc/kernels/vertex_map.h against brute force that enumerates the key
// grid: patch (a, b) of a p x p, stride-t grid over (Hk, Wk) is number a*n2 + b and,
// scaled up by s, covers the region whose top-left pixel is (s*t*a, s*t*b).
#include <cinttypes>
#include <cstdint>
#include <random>

#include "kernels/vertex_map.h"
#include "tests/check.h"

namespace {

// Numbers the windows that fit, in row-major order, and checks each against the kernel.
void check_grid(int64_t Hk, int64_t Wk, int64_t s, int64_t p, int64_t t) {
  const auto d = sr::vertex_map_dims(Hk, Wk, s, p, t);
  int64_t number = 0, rows = 0, cols = 0;
  for (int64_t a = 0; t * a + p <= Hk; ++a, ++rows) {
    cols = 0;
    for (int64_t b = 0; t * b + p <= Wk; ++b, ++cols, ++number) {
      int64_t row = -1, col = -1;
      sr::vertex_of(d, number, &row, &col);
      CHECK_MSG(row == s * t * a && col == s * t * b,
                "Hk=%" PRId64 " Wk=%" PRId64 " s=%" PRId64 " p=%" PRId64 " t=%" PRId64 ": idx %" PRId64 " -> (%" PRId64
                ", %" PRId64 "), want (%" PRId64 ", %" PRId64 ")",
                Hk, Wk, s, p, t, number, row, col, s * t * a, s * t * b);
      CHECK(sr::vertex_in_range(d, number));
    }
  }
  CHECK_MSG(d.n1 == rows && d.n2 == cols && d.step == s * t,
            "Hk=%" PRId64 " Wk=%" PRId64 " p=%" PRId64 " t=%" PRId64 ": grid %" PRId64 "x%" PRId64 ", want %" PRId64
            "x%" PRId64,
            Hk, Wk, p, t, d.n1, d.n2, rows, cols);
  // Just outside the grid, on both sides.
  CHECK(!sr::vertex_in_range(d, -1));
  CHECK(!sr::vertex_in_range(d, number));
  CHECK(!sr::vertex_in_range(d, INT64_MIN));
  CHECK(!sr::vertex_in_range(d, INT64_MAX));
}

void test_small_grids() {
  for (int64_t p = 1; p <= 4; ++p)
    for (int64_t t = 1; t <= 5; ++t)
      for (int64_t Hk = p; Hk <= p + 9; ++Hk)
        for (int64_t Wk = p; Wk <= p + 9; Wk += 3)
          for (int64_t s = 1; s <= 4; ++s) check_grid(Hk, Wk, s, p, t);
}

void test_ignn_and_random_grids() {
  check_grid(64, 64, 2, 3, 2);  // IGNN x2, LR 128
  check_grid(43, 43, 3, 3, 2);  // x3
  check_grid(32, 32, 4, 3, 2);  // x4
  check_grid(200, 1, 1, 1, 1);  // one column
  std::mt19937_64 rng(11);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int k = 0; k < 200; ++k) {
    const int64_t p = pick(1, 7);
    check_grid(p + pick(0, 60), p + pick(0, 60), pick(1, 4), p, pick(1, 9));
  }
}

// Large grids: sampled numbers, checked through the closed form (a, b) = divmod(n, n2).
void test_large_numbers() {
  const auto d = sr::vertex_map_dims(100000, 70001, 4, 3, 2);
  std::mt19937_64 rng(3);
  for (int k = 0; k < 1000; ++k) {
    const int64_t n = std::uniform_int_distribution<int64_t>(0, d.n1 * d.n2 - 1)(rng);
    int64_t row, col;
    sr::vertex_of(d, n, &row, &col);
    CHECK(row == 8 * (n / d.n2) && col == 8 * (n % d.n2) && sr::vertex_in_range(d, n));
  }
}

}  // namespace

int main() {
  return sr_test::run({
      {"small_grids", test_small_grids},
      {"ignn_and_random_grids", test_ignn_and_random_grids},
      {"large_numbers", test_large_numbers},
  });
}
