// Argument checks of the patch-grid ops (extract_patches, vertex_map, class_dispatch),
// shared by the CPU kernels and the CUDA glue.
#pragma once

#include "check.h"
#include "kernels/patch2img.h"

namespace sr_check {

// img (B, C, H, W) and a patch_size x patch_size window every stride pixels that fits it.
inline void extract_patches_args(const at::Tensor& img, int64_t patch_size, int64_t stride) {
  dims(img, "img", 4, "(B, C, H, W)");
  floating(img, "img");
  positive(patch_size, "patch_size");
  positive(stride, "stride");
  patch_fits(patch_size, img.size(2), img.size(3), "img");
}

// idx int64 key-patch numbers of the p x p, stride-t grid of an Hk x Wk key map. Returns
// the number of key patches (idx's values are checked by the caller, on its device).
inline int64_t vertex_map_args(const at::Tensor& idx, int64_t Hk, int64_t Wk, int64_t scale, int64_t patch_size,
                               int64_t stride) {
  int64(idx, "idx");
  positive(Hk, "key_hw");
  positive(Wk, "key_hw");
  positive(scale, "scale");
  positive(patch_size, "patch_size");
  positive(stride, "stride");
  patch_fits(patch_size, Hk, Wk, "key_hw");
  return grid(Hk, patch_size, stride) * grid(Wk, patch_size, stride);
}

// (N, K) float logits or (N,) int64 ids (whose values the caller checks).
inline bool class_dispatch_args(const at::Tensor& x, int64_t K) {
  positive(K, "num_classes");
  const bool logits = at::isFloatingType(x.scalar_type());
  if (logits) {
    SR_CHECK_SHAPE(x.dim() == 2 && x.size(1) == K, x, "logits", "(N, num_classes)");
  } else {
    int64(x, "ids");
    dims(x, "ids", 1, "(N,)");
  }
  return logits;
}

// patches (B, L, C, P, P) on the P x P, stride-t grid of an H x W image: L its patches.
inline sr::Patch2ImgDims patch2img_dims(const at::Tensor& patches, int64_t H, int64_t W, int64_t stride) {
  dims(patches, "patches", 5, "(B, L, C, P, P)");
  floating(patches, "patches");
  positive(H, "out_size");
  positive(W, "out_size");
  positive(stride, "stride");
  const int64_t P = patches.size(3);
  SR_CHECK_SHAPE(patches.size(4) == P && P > 0, patches, "patches", "(B, L, C, P, P) with square patches");
  patch_fits(P, H, W, "out_size");
  const auto d = sr::patch2img_dims(patches.size(0), patches.size(2), H, W, P, stride);
  TORCH_CHECK_VALUE(d.L == patches.size(1), "patches must hold the ", d.m1, "x", d.m2, " = ", d.L,
                    " patches of the grid, got L=", patches.size(1));
  return d;
}

// grad_out (B, C, H, W) of patch2img's output: the same grid.
inline sr::Patch2ImgDims patch2img_backward_dims(const at::Tensor& grad, int64_t patch_size, int64_t stride) {
  dims(grad, "grad_out", 4, "(B, C, H, W)");
  floating(grad, "grad_out");
  positive(patch_size, "patch_size");
  positive(stride, "stride");
  patch_fits(patch_size, grad.size(2), grad.size(3), "grad_out");
  return sr::patch2img_dims(grad.size(0), grad.size(1), grad.size(2), grad.size(3), patch_size, stride);
}

}  // namespace sr_check
