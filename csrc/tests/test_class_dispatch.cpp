// Unit tests for csrc/kernels/class_dispatch.h: argmax takes the first maximum on ties
// and treats a NaN as the maximum (the first NaN wins), as torch.argmax does.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernels/class_dispatch.h"
#include "tests/check.h"

namespace {

int64_t brute_argmax(const std::vector<float>& row) {
  for (size_t k = 0; k < row.size(); ++k)
    if (std::isnan(row[k])) return int64_t(k);
  int64_t best = 0;
  for (size_t k = 1; k < row.size(); ++k)
    if (row[k] > row[best]) best = int64_t(k);
  return best;
}

void test_ties_and_nans() {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<std::vector<float>> rows = {
      {1, 3, 3, 2}, {5}, {-inf, -inf}, {0, nan, 7, nan}, {nan, 1}, {2, 2, 2}, {-1, inf, inf}, {3, 1, nan},
  };
  const int64_t want[] = {1, 0, 0, 1, 0, 0, 1, 2};
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t got = sr::row_argmax<float, float>(rows[i].data(), int64_t(rows[i].size()));
    CHECK_MSG(got == want[i], "row %zu: argmax %lld, want %lld", i, (long long)got, (long long)want[i]);
  }
}

void test_random_rows() {
  std::mt19937_64 rng(7);
  for (int n = 0; n < 2000; ++n) {
    const int64_t K = 1 + int64_t(rng() % 9);
    std::vector<float> row(K);
    for (auto& v : row) v = float(rng() % 4);  // small integers: many ties
    if (rng() % 10 == 0) row[rng() % K] = std::numeric_limits<float>::quiet_NaN();
    const int64_t got = sr::row_argmax<float, double>(row.data(), K);
    CHECK(got == brute_argmax(row));
  }
}

}  // namespace

int main() {
  return sr_test::run({
      {"ties_and_nans", test_ties_and_nans},
      {"random_rows", test_random_rows},
  });
}
