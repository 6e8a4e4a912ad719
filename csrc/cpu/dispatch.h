// Small helpers shared by the CPU kernel files.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <vector>

#include "check.h"
#include "kernels/common.h"

// float32/float64 for exactness tests, and float16/bfloat16 with float accumulation.
#define SR_DISPATCH_FLOATS(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

namespace sr_cpu {

inline void check_cpu_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.device().is_cpu(), name, " must be a CPU tensor, got ", t.device());
  sr_check::floating(t, name);
}

// Coverage counts along one axis: how many grid windows contain each coordinate.
inline std::vector<int64_t> axis_counts(int64_t n, int64_t p, int64_t t, int64_t m) {
  std::vector<int64_t> cnt(n);
  for (int64_t y = 0; y < n; ++y) cnt[y] = sr::cover_count(y, p, t, m);
  return cnt;
}

// A 4-d map stored channels-last (and not also contiguous, as a 1x1 or single-channel map is):
// the kernels with a channels-last path read it in place and write their output so.
inline bool channels_last(const at::Tensor& x) {
  return x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

// Waking the thread team costs more than it saves on small maps.
inline bool worth_threads(int64_t elements) { return elements >= (int64_t(1) << 15); }

}  // namespace sr_cpu
