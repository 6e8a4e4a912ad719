// CPU backward of naf_ffn (forward: naf_ffn.cpp). Tile by tile, like the forward: the
// tile's intermediates are recomputed (forward_tile), then, with G the upstream gradient,
//   dz = gamma G;        dW_out += dz g^T;   dg = W_out^T dz;   dh = (dg b, dg a)
//   dW_in += dh xn^T;    dxn = W_in^T dh;    LayerNorm backward per pixel;  dy = G + dy_ln
// with the vector gradients summed alongside. The weight gradients are summed per fixed
// part of the tiles and then over the parts in order: deterministic at any thread count.
#include <torch/library.h>

#include <tuple>

#include "cpu/dispatch.h"
#include "cpu/naf_ffn.h"

namespace {

using sr_naf::Buffers;
using sr_naf::Dims;
using sr_naf::gemm;
using sr_naf::kTile;

// One part's gradient sums: W_in (2F, C), W_out (C, F) and the vectors.
template <typename T>
struct Sums {
  std::vector<T> w_in, w_out, b_in, b_out, nw, nb, gamma;
  explicit Sums(const Dims& d)
      : w_in(2 * d.F * d.C), w_out(d.C * d.F), b_in(2 * d.F), b_out(d.C), nw(d.C), nb(d.C), gamma(d.C) {}
};

template <typename T>
struct Grads {  // scratch of one tile's backward
  std::vector<T> dz, dh, dxn, prod, col;
  explicit Grads(const Dims& d)
      : dz(d.C * kTile), dh(2 * d.F * kTile), dxn(d.C * kTile), prod(2 * d.F * std::max(d.C, d.F)), col(2 * kTile) {}
};

template <typename T>
void tile_bwd(const T* G, const T* y, const T* nw, const T* nb, const T* w_in, const T* b_in, const T* w_out,
              const T* b_out, const T* gamma, T* dy, Buffers<T>& w, Grads<T>& g, Sums<T>& s, const Dims& d, int64_t n,
              T eps) {
  sr_naf::forward_tile(y, nw, nb, w_in, b_in, w_out, b_out, w, d, n, eps);
  for (int64_t c = 0; c < d.C; ++c) {
    const T *gr = G + c * d.HW, *zr = w.z.data() + c * n;
    T* dz = g.dz.data() + c * n;
    T sg = T(0), sd = T(0);
    for (int64_t t = 0; t < n; ++t) {
      sg += gr[t] * zr[t];
      dz[t] = gamma[c] * gr[t];
      sd += dz[t];
    }
    s.gamma[c] += sg;
    s.b_out[c] += sd;
  }
  gemm(g.prod.data(), g.dz.data(), d.C, n, false, w.g.data(), d.F, n, true);  // dz g^T (C, F)
  for (int64_t e = 0; e < d.C * d.F; ++e) s.w_out[e] += g.prod[e];
  gemm(g.dh.data(), w_out, d.C, d.F, true, g.dz.data(), d.C, n, false);  // dg = W_out^T dz, (F, n)
  for (int64_t f = 0; f < d.F; ++f) {  // dg sits in dh's first F rows; a = h[:F], b = h[F:]
    T *da = g.dh.data() + f * n, *db = g.dh.data() + (d.F + f) * n;
    const T *a = w.h.data() + f * n, *b = w.h.data() + (d.F + f) * n;
    T sa = T(0), sb = T(0);
    for (int64_t t = 0; t < n; ++t) {
      const T dg = da[t];
      da[t] = dg * b[t];
      db[t] = dg * a[t];
      sa += da[t];
      sb += db[t];
    }
    s.b_in[f] += sa;
    s.b_in[d.F + f] += sb;
  }
  gemm(g.prod.data(), g.dh.data(), 2 * d.F, n, false, w.xn.data(), d.C, n, true);  // dh xn^T (2F, C)
  for (int64_t e = 0; e < 2 * d.F * d.C; ++e) s.w_in[e] += g.prod[e];
  gemm(g.dxn.data(), w_in, 2 * d.F, d.C, true, g.dh.data(), 2 * d.F, n, false);  // dxn (C, n)
  // LayerNorm backward: with xhat = (y - mean) rstd and dxhat = dxn nw,
  // dy_ln = rstd (dxhat - mean_c(dxhat) - xhat mean_c(dxhat xhat)).
  T *m1 = g.col.data(), *m2 = g.col.data() + kTile;
  std::fill(m1, m1 + n, T(0));
  std::fill(m2, m2 + n, T(0));
  for (int64_t c = 0; c < d.C; ++c) {
    const T* yr = y + c * d.HW;
    const T* dx = g.dxn.data() + c * n;
    T sw = T(0), sb = T(0);
    for (int64_t t = 0; t < n; ++t) {
      const T xhat = deviation(w, t, yr[t]) * w.rstd[t], dxh = dx[t] * nw[c];
      sw += dx[t] * xhat;
      sb += dx[t];
      m1[t] += dxh;
      m2[t] += dxh * xhat;
    }
    s.nw[c] += sw;
    s.nb[c] += sb;
  }
  for (int64_t c = 0; c < d.C; ++c) {
    const T *yr = y + c * d.HW, *gr = G + c * d.HW, *dx = g.dxn.data() + c * n;
    T* o = dy + c * d.HW;
    for (int64_t t = 0; t < n; ++t) {
      const T xhat = deviation(w, t, yr[t]) * w.rstd[t];
      o[t] = gr[t] + w.rstd[t] * (dx[t] * nw[c] - m1[t] / T(d.C) - xhat * m2[t] / T(d.C));
    }
  }
}

template <typename T>
void run_bwd(const T* G, const T* y, const T* nw, const T* nb, const T* w_in, const T* b_in, const T* w_out,
             const T* b_out, const T* gamma, T* dy, std::vector<at::Tensor>& out, const Dims d, T eps) {
  const int64_t tiles = (d.HW + kTile - 1) / kTile, jobs = d.B * tiles;
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(32, jobs)), per = (jobs + parts - 1) / parts;
  std::vector<Sums<T>> sums(parts, Sums<T>(d));
#pragma omp parallel if (sr_cpu::worth_threads(d.B * d.HW * d.C))
  {
    Buffers<T> w(d);
    Grads<T> g(d);
#pragma omp for schedule(static)
    for (int64_t part = 0; part < parts; ++part)
      for (int64_t job = part * per; job < std::min(jobs, (part + 1) * per); ++job) {
        const int64_t b = job / tiles, p0 = (job % tiles) * kTile, n = std::min(kTile, d.HW - p0);
        const int64_t off = b * d.C * d.HW + p0;
        tile_bwd<T>(G + off, y + off, nw, nb, w_in, b_in, w_out, b_out, gamma, dy + off, w, g, sums[part], d, n, eps);
      }
  }
  // out: grad of norm_weight, norm_bias, w_in, b_in, w_out, b_out, gamma, each summed over the parts in order
  auto reduce = [&](at::Tensor& t, std::vector<T> Sums<T>::* field) {
    T* p = t.mutable_data_ptr<T>();
    for (int64_t e = 0; e < t.numel(); ++e) {
      T acc = T(0);
      for (int64_t part = 0; part < parts; ++part) acc += (sums[part].*field)[e];
      p[e] = acc;
    }
  };
  reduce(out[0], &Sums<T>::nw);
  reduce(out[1], &Sums<T>::nb);
  reduce(out[2], &Sums<T>::w_in);
  reduce(out[3], &Sums<T>::b_in);
  reduce(out[4], &Sums<T>::w_out);
  reduce(out[5], &Sums<T>::b_out);
  reduce(out[6], &Sums<T>::gamma);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
naf_ffn_bwd_cpu(const at::Tensor& grad_in, const at::Tensor& y_in, const at::Tensor& nw_in, const at::Tensor& nb_in,
                const at::Tensor& w_in_in, const at::Tensor& b_in_in, const at::Tensor& w_out_in,
                const at::Tensor& b_out_in, const at::Tensor& gamma_in, double eps) {
  sr_naf::check_args(y_in, nw_in, nb_in, w_in_in, b_in_in, w_out_in, b_out_in, gamma_in, eps);
  sr_check::same_device(grad_in, "grad", y_in, "y");
  sr_check::shape_like(grad_in, "grad", y_in.sizes(), "y");
  const at::Tensor y = y_in.contiguous(), G = grad_in.to(y.scalar_type()).contiguous();
  const at::Tensor nw = nw_in.contiguous(), nb = nb_in.contiguous(), w_in = w_in_in.contiguous();
  const at::Tensor b_in = b_in_in.contiguous(), w_out = w_out_in.contiguous(), b_out = b_out_in.contiguous();
  const at::Tensor gamma = gamma_in.contiguous();
  at::Tensor dy = at::empty_like(y);
  std::vector<at::Tensor> out = {at::empty_like(nw),   at::empty_like(nb),    at::empty_like(w_in),
                                 at::empty_like(b_in), at::empty_like(w_out), at::empty_like(b_out),
                                 at::empty_like(gamma)};
  const Dims d{y.size(0), y.size(1), y.size(2) * y.size(3), w_in.size(0) / 2};
  if (d.B * d.HW == 0) {
    for (auto& t : out) t.zero_();
    return {dy, out[0], out[1], out[2], out[3], out[4], out[5], out[6]};
  }
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "naf_ffn_bwd_cpu", [&] {
    using T = scalar_t;
    run_bwd<T>(G.const_data_ptr<T>(), y.const_data_ptr<T>(), nw.const_data_ptr<T>(), nb.const_data_ptr<T>(),
               w_in.const_data_ptr<T>(), b_in.const_data_ptr<T>(), w_out.const_data_ptr<T>(), b_out.const_data_ptr<T>(),
               gamma.const_data_ptr<T>(), dy.mutable_data_ptr<T>(), out, d, T(eps));
  });
  return {dy, out[0], out[1], out[2], out[3], out[4], out[5], out[6]};
}

}  // namespace

// The schemas of the kernels below (sr_ops/ops/<op>.py calls them; the CUDA glue registers
// the same names for CUDA tensors).
TORCH_LIBRARY_FRAGMENT(sr_ops, m) {
  m.def(
      "_naf_ffn_bwd(Tensor grad, Tensor y, Tensor norm_weight, Tensor norm_bias, Tensor w_in, Tensor b_in, "
      "Tensor w_out, Tensor b_out, Tensor gamma, float eps) -> (Tensor, Tensor, Tensor, Tensor, Tensor, "
      "Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) { m.impl("_naf_ffn_bwd", &naf_ffn_bwd_cpu); }
