// GELU, shared by the CPU and CUDA kernels (gelu_layernorm2d's prologue):
//   exact:  0.5 x (1 + erf(x / sqrt 2))
//   tanh:   0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
// torch.nn.functional.gelu's two `approximate` modes, in the accumulator type.
#pragma once

#include <math.h>

#include "kernels/common.h"

namespace sr {

template <typename Acc>
SR_HOST_DEVICE Acc gelu(Acc x, bool tanh_approx) {
  if (tanh_approx) {
    const Acc inner = Acc(0.7978845608028654) * (x + Acc(0.044715) * x * x * x);
    return Acc(0.5) * x * (Acc(1) + tanh(inner));
  }
  return Acc(0.5) * x * (Acc(1) + erf(x * Acc(0.70710678118654752)));
}

}  // namespace sr
