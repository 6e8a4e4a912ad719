// merge_patches: HR image pixel = mean of the pasted outputs covering it, 0 where none.
// Its backward is a crop of the gradient divided by the same coverage. Both divide
// (rather than multiply by a reciprocal) so every backend rounds like the reference.
#pragma once

#include "kernels/common.h"
#include "kernels/convert.h"

namespace sr {

// An uncovered pixel's sum is exactly 0, so dividing it by 1 gives the contract's 0; the
// division is then unconditional, which lets the CPU loop vectorise.
template <typename T, typename Acc>
SR_HOST_DEVICE T merge_pixel(Acc sum, int64_t count) {
  return sr_cast<T>(sum / Acc(count > 0 ? count : 1));
}

// Gradient element of an output pixel covered `count` (>= 1) times.
template <typename T, typename Acc>
SR_HOST_DEVICE T merge_grad(T grad, int64_t count) {
  return sr_cast<T>(sr_cast<Acc>(grad) / Acc(count > 0 ? count : 1));
}

}  // namespace sr
