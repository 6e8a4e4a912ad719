// CPU kernel for extract_patches: the covering grid's corners, then a crop of every window
// (the backward is gather_patches' paste with the identity order).
#include <torch/library.h>

#include <numeric>

#include "checks/patch_grids.h"
#include "cpu/patch_windows.h"
#include "kernels/extract_patches.h"

namespace {

std::tuple<at::Tensor, at::Tensor> extract_patches_fwd_cpu(const at::Tensor& img_in, int64_t patch_size,
                                                           int64_t stride) {
  sr_cpu::check_cpu_float(img_in, "img");
  sr_check::extract_patches_args(img_in, patch_size, stride);
  const at::Tensor img = img_in.contiguous();
  const int64_t B = img.size(0), C = img.size(1), H = img.size(2), W = img.size(3);
  const auto d = sr::extract_dims(B, H, W, patch_size, stride);
  at::Tensor coords = at::empty({d.N, 3}, img.options().dtype(at::kLong));
  int64_t* c = coords.mutable_data_ptr<int64_t>();
  for (int64_t q = 0; q < d.N; ++q) sr::extract_corner(d, q, c + 3 * q, c + 3 * q + 1, c + 3 * q + 2);
  std::vector<int64_t> identity(d.N);
  std::iota(identity.begin(), identity.end(), int64_t(0));
  at::Tensor out = sr_cpu::empty_large({d.N, C, patch_size, patch_size}, img.options());
  SR_DISPATCH_FLOATS(img.scalar_type(), "extract_patches_fwd_cpu", [&] {
    sr_cpu::crop_windows<scalar_t>(img.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), c, identity.data(),
                                   d.N, C, H, W, patch_size, 1);
  });
  return {out, coords};
}

}  // namespace

// The schemas of the kernels below (sr_ops/ops/<op>.py calls them; the CUDA glue registers
// the same names for CUDA tensors).
TORCH_LIBRARY_FRAGMENT(sr_ops, m) {
  // ClassSR patch dispatch. coords (N, 3) int64 (batch, row, col), order (N,) int64;
  // window i is coords[order[i]] (times scale for merge's HR side).
  m.def("_extract_patches_fwd(Tensor img, int patch_size, int stride) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) { m.impl("_extract_patches_fwd", &extract_patches_fwd_cpu); }
