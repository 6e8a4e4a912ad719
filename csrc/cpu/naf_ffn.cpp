// CPU forward of naf_ffn, the second half of a NAFNet block:
//   out = y + gamma * (W_out . gate(W_in . LN(y) + b_in) + b_out),  gate(h) = h[:F] * h[F:]
// per pixel, LN over the C channels. One pass over tiles of kTile pixels of one image:
// the tile's channel statistics, its normalised (C, T) block (the GEMM's prologue), the
// two BLAS GEMMs, SimpleGate and the residual (epilogues) all stay in per-thread
// buffers, so the (2F, H, W) and (F, H, W) intermediate maps are never written (on the
// machines we measured, fresh 16-32 MB maps cost more in page faults than the GEMM time).
// A channels-last y is read in place, in pixel-major tiles (run<T, true>).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/naf_ffn.h"

namespace {

using sr_naf::Buffers;
using sr_naf::Dims;
using sr_naf::kTile;

template <typename T>
void tile(const T* y, const T* nw, const T* nb, const T* w_in, const T* b_in, const T* w_out, const T* b_out,
          const T* gamma, T* out, Buffers<T>& w, const Dims& d, int64_t n, T eps) {
  forward_tile(y, nw, nb, w_in, b_in, w_out, b_out, w, d, n, eps);
  for (int64_t c = 0; c < d.C; ++c) {
    const T* zr = w.z.data() + c * n;
    const T* yr = y + c * d.HW;
    T* o = out + c * d.HW;
    const T gm = gamma[c];
    for (int64_t t = 0; t < n; ++t) o[t] = yr[t] + gm * zr[t];
  }
}

// OpenMP over (image, tile) jobs; each thread owns one set of tile buffers. Nhwc: y is
// channels-last, a job's kTile consecutive pixels are read and written in place.
template <typename T, bool Nhwc>
void run(const at::Tensor& y, const at::Tensor& nw, const at::Tensor& nb, const at::Tensor& w_in,
         const at::Tensor& b_in, const at::Tensor& w_out, const at::Tensor& b_out, const at::Tensor& gamma,
         at::Tensor& out, const Dims d, T eps) {
  const int64_t tiles = (d.HW + kTile - 1) / kTile;
  const T *yp = y.const_data_ptr<T>(), *nwp = nw.const_data_ptr<T>(), *nbp = nb.const_data_ptr<T>();
  const T *bip = b_in.const_data_ptr<T>(), *bop = b_out.const_data_ptr<T>(), *gp = gamma.const_data_ptr<T>();
  const T *wip = w_in.const_data_ptr<T>(), *wop = w_out.const_data_ptr<T>();
  T* op = out.mutable_data_ptr<T>();
#pragma omp parallel if (sr_cpu::worth_threads(d.B * d.HW * d.C))
  {
    Buffers<T> w(d);
#pragma omp for schedule(static)
    for (int64_t job = 0; job < d.B * tiles; ++job) {
      const int64_t b = job / tiles, p0 = (job % tiles) * kTile, n = std::min(kTile, d.HW - p0);
      if constexpr (Nhwc) {
        const int64_t off = (b * d.HW + p0) * d.C;
        sr_naf::forward_tile_nhwc(yp + off, nwp, nbp, wip, bip, wop, bop, w, d, n, eps);
        sr_naf::residual_pixels(yp + off, w.z.data(), bop, gp, op + off, n, d.C);
      } else {
        const int64_t off = b * d.C * d.HW + p0;
        tile<T>(yp + off, nwp, nbp, wip, bip, wop, bop, gp, op + off, w, d, n, eps);
      }
    }
  }
}

at::Tensor naf_ffn_fwd_cpu(const at::Tensor& y_in, const at::Tensor& nw_in, const at::Tensor& nb_in,
                           const at::Tensor& w_in_in, const at::Tensor& b_in_in, const at::Tensor& w_out_in,
                           const at::Tensor& b_out_in, const at::Tensor& gamma_in, double eps) {
  sr_naf::check_args(y_in, nw_in, nb_in, w_in_in, b_in_in, w_out_in, b_out_in, gamma_in, eps);
  const int64_t C = y_in.size(1), F = w_in_in.size(0) / 2;
  const at::Tensor nw = nw_in.contiguous(), nb = nb_in.contiguous();
  const at::Tensor w_in = w_in_in.contiguous(), b_in = b_in_in.contiguous();
  const at::Tensor w_out = w_out_in.contiguous(), b_out = b_out_in.contiguous(), gamma = gamma_in.contiguous();
  const Dims d{y_in.size(0), C, y_in.size(2) * y_in.size(3), F};
  if (sr_cpu::channels_last(y_in)) {  // output channels-last too (sr_ops/ops/naf_ffn.py's contract)
    at::Tensor out = at::empty_like(y_in, at::MemoryFormat::ChannelsLast);
    AT_DISPATCH_FLOATING_TYPES(y_in.scalar_type(), "naf_ffn_fwd_cpu", [&] {
      run<scalar_t, true>(y_in, nw, nb, w_in, b_in, w_out, b_out, gamma, out, d, scalar_t(eps));
    });
    return out;
  }
  const at::Tensor y = y_in.contiguous();
  at::Tensor out = at::empty_like(y);
  if (d.B * d.HW == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "naf_ffn_fwd_cpu", [&] {
    run<scalar_t, false>(y, nw, nb, w_in, b_in, w_out, b_out, gamma, out, d, scalar_t(eps));
  });
  return out;
}

}  // namespace

// The schemas of the kernels below (sr_ops/ops/<op>.py calls them; the CUDA glue registers
// the same names for CUDA tensors).
TORCH_LIBRARY_FRAGMENT(sr_ops, m) {
  // NAFNet's FFN half: y (B, C, H, W), w_in (2F, C), w_out (C, F), the vectors (C,) or
  // (2F,), one dtype. CPU only so far (sr_ops/_build_check.py lists it).
  m.def(
      "_naf_ffn_fwd(Tensor y, Tensor norm_weight, Tensor norm_bias, Tensor w_in, Tensor b_in, Tensor w_out, "
      "Tensor b_out, Tensor gamma, float eps) -> Tensor");
}

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) { m.impl("_naf_ffn_fwd", &naf_ffn_fwd_cpu); }
