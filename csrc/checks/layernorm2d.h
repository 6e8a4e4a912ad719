// layernorm2d's and gelu_layernorm2d's argument checks, shared by the CPU kernels and the
// CUDA glue.
#pragma once

#include <c10/util/string_view.h>

#include "check.h"

namespace sr_check {

// x (B, C, H, W), weight and bias (C,): one dtype and device.
inline void layernorm2d_args(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps_) {
  dims(x, "x", 4, "(B, C, H, W)");
  floating(x, "x");
  channels(x, "x", "layernorm2d");
  same_dtype_device(x, "x", {{&w, "weight"}, {&b, "bias"}});
  shape_is(w, "weight", {x.size(1)}, "(C,)");
  shape_is(b, "bias", {x.size(1)}, "(C,)");
  eps(eps_);
}

inline void gelu_approximate(c10::string_view approximate) {
  TORCH_CHECK_VALUE(approximate == "none" || approximate == "tanh",
                    "approximate must be 'none' or 'tanh' (as F.gelu), got '", approximate, "'");
}

inline void layernorm2d_backward_args(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& w,
                                      const at::Tensor& b, double eps_) {
  layernorm2d_args(x, w, b, eps_);
  grad_like(grad, x);
  shape_like(grad, "grad_out", x.sizes(), "x");
}

}  // namespace sr_check
