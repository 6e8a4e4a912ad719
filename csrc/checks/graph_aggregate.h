// graph_aggregate's argument checks, shared by the CPU kernels and the CUDA glue: the
// kernels gather at idx's key patches, so its values are checked too.
#pragma once

#include <c10/util/Optional.h>

#include "check.h"

namespace sr_check {

// feat, query_feat (B, C, H, W) of one dtype and device; idx (B, m, k) int64 numbers of the
// p x p, stride-t key grid of an Hk x Wk map; weights (B, k, sH, sW) or none. Every
// neighbour region (scale * t apart) starts inside feat.
inline void graph_aggregate_args(const at::Tensor& feat, const at::Tensor& idx, const at::Tensor& qf,
                                 const c10::optional<at::Tensor>& weights, int64_t Hk, int64_t Wk, int64_t scale,
                                 int64_t p, int64_t t) {
  dims(feat, "feat", 4, "(B, C, H, W)");
  floating(feat, "feat");
  same_dtype_device(feat, "feat", {{&qf, "query_feat"}});
  shape_like(qf, "query_feat", feat.sizes(), "feat");
  positive(scale, "scale");
  positive(t, "stride");
  TORCH_CHECK_VALUE(p >= 2, "patch_size must be at least 2 (AdaPN needs a variance), got ", p);
  positive(Hk, "key_hw");
  positive(Wk, "key_hw");
  patch_fits(p, Hk, Wk, "key_hw");
  patch_fits(p, feat.size(2), feat.size(3), "feat");
  const int64_t n1 = grid(Hk, p, t), n2 = grid(Wk, p, t);
  const int64_t last_y = scale * t * (n1 - 1), last_x = scale * t * (n2 - 1);
  TORCH_CHECK_VALUE(last_y < feat.size(2) && last_x < feat.size(3), "key_hw (", Hk, ", ", Wk, ") at scale=", scale,
                    " must put every neighbour region's start inside feat (", feat.size(2), ", ", feat.size(3),
                    "), got the last at (", last_y, ", ", last_x, ")");
  int64(idx, "idx");
  same_device(idx, "idx", feat, "feat");
  const int64_t m = grid(feat.size(2), p, t) * grid(feat.size(3), p, t);
  SR_CHECK_SHAPE(idx.dim() == 3 && idx.size(0) == feat.size(0) && idx.size(1) == m && idx.size(2) > 0, idx, "idx",
                 "(B, m, k) with feat's B, m query patches and k >= 1");
  index_range(idx, n1 * n2, "idx", "the key patches");
  if (weights.has_value()) {
    same_dtype_device(feat, "feat", {{&*weights, "weights"}});
    shape_is(*weights, "weights", {feat.size(0), idx.size(2), scale * feat.size(2), scale * feat.size(3)},
             "(B, k, sH, sW)");
  }
}

// The backward's grad_out, its arguments checked by graph_aggregate_args.
inline void graph_aggregate_grad(const at::Tensor& grad, const at::Tensor& feat, const at::Tensor& idx,
                                 const c10::optional<at::Tensor>& weights, int64_t scale) {
  same_device(grad, "grad_out", feat, "feat");
  const int64_t B = feat.size(0), C = feat.size(1), HH = scale * feat.size(2), WW = scale * feat.size(3);
  if (weights.has_value()) {
    shape_like(grad, "grad_out", {B, C, HH, WW}, "the output");
  } else {
    shape_like(grad, "grad_out", {B, idx.size(2), C, HH, WW}, "the output");
  }
}

}  // namespace sr_check
