// gather_patches' and merge_patches' argument checks, shared by the CPU kernels and the
// CUDA glue. The kernels read and paste (and the CUDA glue bins) at the windows that coords
// and order name, so their values are checked too, with reductions on their device.
#pragma once

#include "check.h"

namespace sr_check {

// img (B, C, H, W); P x P windows at coords[order[i]].
inline void gather_args(const at::Tensor& img, const at::Tensor& coords, const at::Tensor& order, int64_t P) {
  dims(img, "img", 4, "(B, C, H, W)");
  floating(img, "img");
  positive(P, "patch_size");
  same_device(coords, "coords", img, "img");
  patch_fits(P, img.size(2), img.size(3), "img");
  windows(coords, order, img.size(0), img.size(2), img.size(3), P, 1);
}

// grad (N, C, P, P) of the gathered windows of a (B, C, H, W) image.
inline void gather_backward_args(const at::Tensor& grad, const at::Tensor& coords, const at::Tensor& order, int64_t B,
                                 int64_t H, int64_t W) {
  dims(grad, "grad", 4, "(N, C, P, P)");
  floating(grad, "grad");
  SR_CHECK_SHAPE(order.dim() == 1, order, "order", "(N,) with coords' N");  // before order.size(0)
  SR_CHECK_SHAPE(grad.size(2) == grad.size(3) && grad.size(0) == order.size(0), grad, "grad",
                 "(N, C, P, P) with order's N and square windows");
  same_device(coords, "coords", grad, "grad");
  positive(B, "B");
  patch_fits(grad.size(2), H, W, "the image", "the patch size");
  windows(coords, order, B, H, W, grad.size(2), 1);
}

// outputs (N, C, s*P, s*P) pasted at s * coords[order[i]] of a (B, C, s*H, s*W) image.
inline void merge_args(const at::Tensor& outputs, const at::Tensor& coords, const at::Tensor& order, int64_t B,
                       int64_t H, int64_t W, int64_t scale) {
  dims(outputs, "outputs", 4, "(N, C, s*P, s*P)");
  floating(outputs, "outputs");
  positive(scale, "scale");
  positive(B, "B");
  SR_CHECK_SHAPE(order.dim() == 1, order, "order", "(N,) with coords' N");  // before order.size(0)
  SR_CHECK_SHAPE(outputs.size(2) == outputs.size(3) && outputs.size(2) % scale == 0 && outputs.size(2) > 0 &&
                     outputs.size(0) == order.size(0),
                 outputs, "outputs", "(N, C, s*P, s*P) with order's N");
  same_device(coords, "coords", outputs, "outputs");
  windows(coords, order, B, scale * H, scale * W, outputs.size(2), scale);
}

// grad (B, C, s*H, s*W) of the merged image; (s*P) x (s*P) windows cropped from it.
inline void merge_backward_args(const at::Tensor& grad, const at::Tensor& coords, const at::Tensor& order,
                                int64_t patch_size, int64_t scale) {
  dims(grad, "grad", 4, "(B, C, s*H, s*W)");
  floating(grad, "grad");
  positive(patch_size, "patch_size");
  positive(scale, "scale");
  same_device(coords, "coords", grad, "grad");
  windows(coords, order, grad.size(0), grad.size(2), grad.size(3), scale * patch_size, scale);
}

}  // namespace sr_check
