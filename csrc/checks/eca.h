// eca's argument checks, shared by the CPU kernels and the CUDA glue.
#pragma once

#include "check.h"

namespace sr_check {

// x (B, C, H, W) with a channel and a pixel to pool (the forward splits C among threads), conv1d_weight (k,) with k odd: one dtype and device.
inline void eca_args(const at::Tensor& x, const at::Tensor& w) {
  dims(x, "x", 4, "(B, C, H, W)");
  floating(x, "x");
  channels(x, "x", "eca");
  same_dtype_device(x, "x", {{&w, "conv1d_weight"}});
  SR_CHECK_SHAPE(w.dim() == 1 && w.size(0) % 2 == 1, w, "conv1d_weight", "(k,) with k odd");
  SR_CHECK_SHAPE(x.size(2) * x.size(3) > 0, x, "x", "(B, C, H, W) with at least one pixel to pool");
}

inline void eca_backward_args(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& w) {
  eca_args(x, w);
  grad_like(grad, x);
  shape_like(grad, "grad_out", x.sizes(), "x");
}

}  // namespace sr_check
