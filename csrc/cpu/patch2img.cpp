// CPU kernels for patch2img (OpenMP over output rows / patches).
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "checks/patch_grids.h"
#include "cpu/dispatch.h"
#include "kernels/patch2img.h"

namespace {

// The loops live in templates because OpenMP pragmas cannot sit inside the
// AT_DISPATCH macro's lambda argument.
//
// Forward, one output row (b, y) per iteration: stream the covering patch rows in
// memory order into a (C, W) accumulator, then divide by the coverage. Each pixel
// sums its patches in the same order (i, then j ascending) as sr::patch2img_pixel.
template <typename T>
void fwd_impl(const T* src, T* dst, const sr::Patch2ImgDims d) {
  using Acc = at::opmath_type<T>;
  const auto cy = sr_cpu::axis_counts(d.H, d.P, d.T, d.m1), cx = sr_cpu::axis_counts(d.W, d.P, d.T, d.m2);
#pragma omp parallel if (sr_cpu::worth_threads(d.B * d.C * d.H * d.W))
  {
    std::vector<Acc> acc(d.C * d.W);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < d.B * d.H; ++r) {
      const int64_t b = r / d.H, y = r % d.H;
      std::fill(acc.begin(), acc.end(), Acc(0));
      int64_t i0, i1;
      sr::cover_range(y, d.P, d.T, d.m1, &i0, &i1);
      for (int64_t i = i0; i <= i1; ++i) {
        const int64_t py = y - d.T * i;
        for (int64_t j = 0; j < d.m2; ++j) {
          const T* patch = src + sr::patch_offset(d, b, i * d.m2 + j, 0, py, 0);
          for (int64_t c = 0; c < d.C; ++c) {
            Acc* a = acc.data() + c * d.W + d.T * j;
            const T* s = patch + c * d.P * d.P;
            for (int64_t px = 0; px < d.P; ++px) a[px] += Acc(s[px]);
          }
        }
      }
      for (int64_t c = 0; c < d.C; ++c) {
        T* out = dst + ((b * d.C + c) * d.H + y) * d.W;
        const Acc* a = acc.data() + c * d.W;
        for (int64_t x = 0; x < d.W; ++x) {
          const int64_t n = cy[y] * cx[x];
          out[x] = n > 0 ? T(a[x] / Acc(n)) : T(0);
        }
      }
    }
  }
}

// Backward, one patch row i per iteration: each patch's (C, P, P) block is written
// contiguously, reading the P image rows it covers.
template <typename T>
void bwd_impl(const T* src, T* dst, const sr::Patch2ImgDims d) {
  using Acc = at::opmath_type<T>;
  const auto cy = sr_cpu::axis_counts(d.H, d.P, d.T, d.m1), cx = sr_cpu::axis_counts(d.W, d.P, d.T, d.m2);
#pragma omp parallel for schedule(static) if (sr_cpu::worth_threads(d.B * d.C * d.H * d.W))
  for (int64_t r = 0; r < d.B * d.m1; ++r) {
    const int64_t b = r / d.m1, i = r % d.m1;
    for (int64_t j = 0; j < d.m2; ++j) {
      T* out = dst + sr::patch_offset(d, b, i * d.m2 + j, 0, 0, 0);
      for (int64_t c = 0; c < d.C; ++c) {
        for (int64_t py = 0; py < d.P; ++py) {
          const int64_t y = d.T * i + py;
          const T* g = src + ((b * d.C + c) * d.H + y) * d.W + d.T * j;
          for (int64_t px = 0; px < d.P; ++px) *out++ = T(Acc(g[px]) / Acc(cy[y] * cx[d.T * j + px]));
        }
      }
    }
  }
}

at::Tensor patch2img_fwd_cpu(const at::Tensor& patches_in, int64_t H, int64_t W, int64_t stride) {
  sr_cpu::check_cpu_float(patches_in, "patches");
  const auto d = sr_check::patch2img_dims(patches_in, H, W, stride);
  const at::Tensor patches = patches_in.contiguous();
  at::Tensor out = at::empty({d.B, d.C, H, W}, patches.options());
  SR_DISPATCH_FLOATS(patches.scalar_type(), "patch2img_fwd_cpu", [&] {
    fwd_impl<scalar_t>(patches.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), d);
  });
  return out;
}

at::Tensor patch2img_bwd_cpu(const at::Tensor& grad_in, int64_t patch_size, int64_t stride) {
  sr_cpu::check_cpu_float(grad_in, "grad_out");
  const auto d = sr_check::patch2img_backward_dims(grad_in, patch_size, stride);
  const at::Tensor grad = grad_in.contiguous();
  at::Tensor out = at::empty({d.B, d.L, d.C, d.P, d.P}, grad.options());
  SR_DISPATCH_FLOATS(grad.scalar_type(), "patch2img_bwd_cpu",
                     [&] { bwd_impl<scalar_t>(grad.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), d); });
  return out;
}

}  // namespace

// The schemas of the kernels below (sr_ops/ops/<op>.py calls them; the CUDA glue registers
// the same names for CUDA tensors).
TORCH_LIBRARY_FRAGMENT(sr_ops, m) {
  m.def("_patch2img_fwd(Tensor patches, int H, int W, int stride) -> Tensor");
  m.def("_patch2img_bwd(Tensor grad_out, int patch_size, int stride) -> Tensor");
}

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) {
  m.impl("_patch2img_fwd", &patch2img_fwd_cpu);
  m.impl("_patch2img_bwd", &patch2img_bwd_cpu);
}
