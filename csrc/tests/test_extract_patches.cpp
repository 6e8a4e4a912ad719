// Unit tests for csrc/kernels/extract_patches.h (and the window lookup of
// gather_patches.h) against brute force: walk each axis in steps of t while a window fits,
// then add n - P if the last window stops short of the border.
#include <cinttypes>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/extract_patches.h"
#include "kernels/gather_patches.h"
#include "tests/check.h"

namespace {

std::vector<int64_t> brute_axis(int64_t n, int64_t p, int64_t t) {
  std::vector<int64_t> pos;
  for (int64_t x = 0; x + p <= n; x += t) pos.push_back(x);
  if (pos.back() + p < n) pos.push_back(n - p);
  return pos;
}

void check_image(int64_t B, int64_t H, int64_t W, int64_t p, int64_t t) {
  const auto d = sr::extract_dims(B, H, W, p, t);
  const auto rows = brute_axis(H, p, t), cols = brute_axis(W, p, t);
  CHECK_MSG(d.m1 == int64_t(rows.size()) && d.m2 == int64_t(cols.size()),
            "H=%" PRId64 " W=%" PRId64 " p=%" PRId64 " t=%" PRId64 ": grid %" PRId64 "x%" PRId64, H, W, p, t, d.m1,
            d.m2);
  if (d.m1 != int64_t(rows.size()) || d.m2 != int64_t(cols.size())) return;
  CHECK(d.N == B * d.m1 * d.m2);
  std::vector<int64_t> coords;
  int64_t q = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t r : rows)
      for (int64_t c : cols) {
        int64_t kb, kr, kc;
        sr::extract_corner(d, q, &kb, &kr, &kc);
        CHECK_MSG(kb == b && kr == r && kc == c,
                  "H=%" PRId64 " W=%" PRId64 " p=%" PRId64 " t=%" PRId64 ": patch %" PRId64 " at (%" PRId64 ", %" PRId64
                  ", %" PRId64 "), want (%" PRId64 ", %" PRId64 ", %" PRId64 ")",
                  H, W, p, t, q, kb, kr, kc, b, r, c);
        coords.insert(coords.end(), {kb, kr, kc});
        ++q;
      }
  // The window lookup through a reversed order, scaled by 3.
  std::vector<int64_t> order(d.N);
  for (int64_t i = 0; i < d.N; ++i) order[i] = d.N - 1 - i;
  for (int64_t i = 0; i < d.N; i += 7) {
    const sr::Window w = sr::window_of(coords.data(), order.data(), i, 3);
    const int64_t* c = coords.data() + 3 * (d.N - 1 - i);
    CHECK(w.b == c[0] && w.y == 3 * c[1] && w.x == 3 * c[2]);
  }
}

void test_small_images() {
  for (int64_t p = 1; p <= 5; ++p)
    for (int64_t t = 1; t <= 7; ++t)
      for (int64_t H = p; H <= p + 11; ++H)
        for (int64_t W = p; W <= p + 11; W += 4) check_image(2, H, W, p, t);
}

void test_classsr_and_random_images() {
  check_image(1, 1024, 1024, 32, 28);  // the ClassSR test setting: 37 x 37, last corner 992
  check_image(1, 510, 339, 32, 28);
  std::mt19937_64 rng(5);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int k = 0; k < 200; ++k) {
    const int64_t p = pick(1, 40);
    check_image(pick(1, 3), p + pick(0, 90), p + pick(0, 90), p, pick(1, 45));
  }
}

}  // namespace

int main() {
  return sr_test::run({
      {"small_images", test_small_images},
      {"classsr_and_random_images", test_classsr_and_random_images},
  });
}
