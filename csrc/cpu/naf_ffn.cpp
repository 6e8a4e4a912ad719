// CPU forward of naf_ffn, the second half of a NAFNet block:
//   out = y + gamma * (W_out . gate(W_in . LN(y) + b_in) + b_out),  gate(h) = h[:F] * h[F:]
// per pixel, LN over the C channels. One pass over tiles of kTile pixels of one image:
// the tile's channel statistics, its normalised (C, T) block (the GEMM's prologue), the
// two BLAS GEMMs, SimpleGate and the residual (epilogues) all stay in per-thread
// buffers, so the (2F, H, W) and (F, H, W) intermediate maps are never written (on the
// machines we measured, fresh 16-32 MB maps cost more in page faults than the GEMM time).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/dispatch.h"

namespace {

constexpr int64_t kTile = 256;  // pixels per tile: the (2F, T) block of F = 64 is 128 KB in float

struct Dims {
  int64_t B, C, HW, F;
};

template <typename T>
struct Buffers {
  std::vector<T> xn, h, g, z, mean, rstd;
  Buffers(const Dims& d)
      : xn(d.C * kTile), h(2 * d.F * kTile), g(d.F * kTile), z(d.C * kTile), mean(kTile), rstd(kTile) {}
};

// The (C, n) block of image b at pixel p0, normalised over C and scaled: xn = LN(y).
template <typename T>
void normalise(const T* y, const T* nw, const T* nb, Buffers<T>& w, const Dims& d, int64_t n, T eps) {
  std::fill(w.mean.begin(), w.mean.begin() + n, T(0));
  std::fill(w.rstd.begin(), w.rstd.begin() + n, T(0));
  for (int64_t c = 0; c < d.C; ++c) {
    const T* row = y + c * d.HW;
    for (int64_t t = 0; t < n; ++t) w.mean[t] += row[t];
  }
  for (int64_t t = 0; t < n; ++t) w.mean[t] /= T(d.C);
  for (int64_t c = 0; c < d.C; ++c) {  // two passes: a one-pass variance cancels at large means
    const T* row = y + c * d.HW;
    for (int64_t t = 0; t < n; ++t) {
      const T dv = row[t] - w.mean[t];
      w.rstd[t] += dv * dv;
    }
  }
  for (int64_t t = 0; t < n; ++t) w.rstd[t] = T(1) / std::sqrt(w.rstd[t] / T(d.C) + eps);
  for (int64_t c = 0; c < d.C; ++c) {
    const T* row = y + c * d.HW;
    T* out = w.xn.data() + c * n;
    const T a = nw[c], b = nb[c];
    for (int64_t t = 0; t < n; ++t) out[t] = (row[t] - w.mean[t]) * w.rstd[t] * a + b;
  }
}

template <typename T>
void tile(const T* y, const T* nw, const T* nb, const T* w_in, const T* b_in, const T* w_out,
          const T* b_out, const T* gamma, T* out, Buffers<T>& w, const Dims& d, int64_t n, T eps) {
  normalise(y, nw, nb, w, d, n, eps);
  // Every GEMM operand is a from_blob view: worker threads run with the autograd keys
  // on, where mm_out refuses an out= call on tensors that require grad (the weights).
  const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  // h (2F, n) = W_in (2F, C) . xn (C, n); z (C, n) = W_out (C, F) . g (F, n).
  at::Tensor h = at::from_blob(w.h.data(), {2 * d.F, n}, opts);
  at::mm_out(h, at::from_blob(const_cast<T*>(w_in), {2 * d.F, d.C}, opts), at::from_blob(w.xn.data(), {d.C, n}, opts));
  for (int64_t f = 0; f < d.F; ++f) {
    const T *a = w.h.data() + f * n, *b = w.h.data() + (d.F + f) * n;
    const T ba = b_in[f], bb = b_in[d.F + f];
    T* g = w.g.data() + f * n;
    for (int64_t t = 0; t < n; ++t) g[t] = (a[t] + ba) * (b[t] + bb);
  }
  at::Tensor z = at::from_blob(w.z.data(), {d.C, n}, opts);
  at::mm_out(z, at::from_blob(const_cast<T*>(w_out), {d.C, d.F}, opts), at::from_blob(w.g.data(), {d.F, n}, opts));
  for (int64_t c = 0; c < d.C; ++c) {
    const T* zr = w.z.data() + c * n;
    const T* yr = y + c * d.HW;
    T* o = out + c * d.HW;
    const T gm = gamma[c], bo = b_out[c];
    for (int64_t t = 0; t < n; ++t) o[t] = yr[t] + gm * (zr[t] + bo);
  }
}

// OpenMP over (image, tile) jobs; each thread owns one set of tile buffers.
template <typename T>
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
      const int64_t off = b * d.C * d.HW + p0;
      tile<T>(yp + off, nwp, nbp, wip, bip, wop, bop, gp, op + off, w, d, n, eps);
    }
  }
}

at::Tensor naf_ffn_fwd_cpu(const at::Tensor& y_in, const at::Tensor& nw_in, const at::Tensor& nb_in,
                           const at::Tensor& w_in_in, const at::Tensor& b_in_in, const at::Tensor& w_out_in,
                           const at::Tensor& b_out_in, const at::Tensor& gamma_in, double eps) {
  sr_cpu::check_cpu_float(y_in, "y");
  TORCH_CHECK(y_in.dim() == 4 && y_in.size(1) > 0, "y must be (B, C, H, W) with C >= 1, got ", y_in.sizes());
  const int64_t C = y_in.size(1);
  TORCH_CHECK(w_in_in.dim() == 2 && w_in_in.size(1) == C && w_in_in.size(0) > 0 && w_in_in.size(0) % 2 == 0,
              "w_in must be (2F, C=", C, "), got ", w_in_in.sizes());
  const int64_t F = w_in_in.size(0) / 2;
  TORCH_CHECK(w_out_in.dim() == 2 && w_out_in.size(0) == C && w_out_in.size(1) == F, "w_out must be (C=", C,
              ", F=", F, "), got ", w_out_in.sizes());
  auto vector = [](const at::Tensor& v, const char* name, int64_t len) {
    TORCH_CHECK(v.dim() == 1 && v.size(0) == len, name, " must be (", len, ",), got ", v.sizes());
  };
  vector(nw_in, "norm_weight", C);
  vector(nb_in, "norm_bias", C);
  vector(b_in_in, "b_in", 2 * F);
  vector(b_out_in, "b_out", C);
  vector(gamma_in, "gamma", C);
  for (const at::Tensor* t : {&nw_in, &nb_in, &w_in_in, &b_in_in, &w_out_in, &b_out_in, &gamma_in})
    TORCH_CHECK(t->scalar_type() == y_in.scalar_type() && t->device().is_cpu(),
                "every naf_ffn tensor must be a CPU tensor of y's dtype ", y_in.scalar_type(), ", got ",
                t->scalar_type(), " on ", t->device());
  TORCH_CHECK(std::isfinite(eps) && eps >= 0, "eps must be finite and non-negative, got ", eps);
  const at::Tensor y = y_in.contiguous(), nw = nw_in.contiguous(), nb = nb_in.contiguous();
  const at::Tensor w_in = w_in_in.contiguous(), b_in = b_in_in.contiguous();
  const at::Tensor w_out = w_out_in.contiguous(), b_out = b_out_in.contiguous(), gamma = gamma_in.contiguous();
  at::Tensor out = at::empty_like(y);
  const Dims d{y.size(0), C, y.size(2) * y.size(3), F};
  if (d.B * d.HW == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "naf_ffn_fwd_cpu", [&] {
    run<scalar_t>(y, nw, nb, w_in, b_in, w_out, b_out, gamma, out, d, scalar_t(eps));
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) { m.impl("_naf_ffn_fwd", &naf_ffn_fwd_cpu); }
