// dwconv_gate_ca's argument checks, shared by the CPU kernels and the CUDA glue.
#pragma once

#include "check.h"
#include "kernels/dwconv_gate_ca.h"

namespace sr_check {

// x (B, C, H, W); dw_weight (C, 1, k, k), k odd; dw_bias (C,); ca_weight (C', C', 1, 1),
// ca_bias (C',) with C' = C/2 when gated: one dtype, one device.
inline sr::DgcDims dgc_dims(const at::Tensor& x, const at::Tensor& dw, const at::Tensor& db, const at::Tensor& cw,
                            const at::Tensor& cb, bool gate) {
  dims(x, "x", 4, "(B, C, H, W)");
  floating(x, "x");
  channels(x, "x", "dwconv_gate_ca");
  same_dtype_device(x, "x", {{&dw, "dw_weight"}, {&db, "dw_bias"}, {&cw, "ca_weight"}, {&cb, "ca_bias"}});
  sr::DgcDims d{x.size(0), x.size(1), x.size(2), x.size(3), 0, gate};
  SR_CHECK_SHAPE(
      dw.dim() == 4 && dw.size(0) == d.C && dw.size(1) == 1 && dw.size(2) == dw.size(3) && dw.size(2) % 2 == 1, dw,
      "dw_weight", "(C, 1, k, k) with x's C and k odd");
  d.k = dw.size(2);
  shape_is(db, "dw_bias", {d.C}, "(C,)");
  TORCH_CHECK_VALUE(!gate || d.C % 2 == 0, "x must have an even number of channels when gate=True, got shape ",
                    shape(x.sizes()));
  const int64_t Cg = sr::dgc_out_channels(d);
  shape_is(cw, "ca_weight", {Cg, Cg, 1, 1}, "(C', C', 1, 1)");
  shape_is(cb, "ca_bias", {Cg}, "(C',)");
  return d;
}

inline sr::DgcDims dgc_backward_dims(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& dw,
                                     const at::Tensor& db, const at::Tensor& cw, const at::Tensor& cb, bool gate) {
  const auto d = dgc_dims(x, dw, db, cw, cb, gate);
  grad_like(grad, x);
  shape_like(grad, "grad_out", {d.B, sr::dgc_out_channels(d), d.H, d.W}, "the output");
  return d;
}

}  // namespace sr_check
