// CPU kernels for graph_aggregate (fused IGNN GraphAgg: vertex map + gather + AdaPN +
// patch2img + optional per-pixel weighting).
//
// Forward, two passes: (1) the (B, m, k, C) table of AdaPN affine terms (alpha, beta,
// shift: see kernels/graph_aggregate.h);
// (2) output-stationary: each HR output row gathers, for the <= ceil(p/t)^2 query
// patches covering it, the k neighbours' region values, normalises them, weights them,
// and divides by the coverage. The (B, m, k, C, s*p, s*p) gathered patches never exist.
//
// Backward: (1) per (b, q, r, c) the sums d_alpha, d_beta over the region's footprint
// give the AdaPN gradient coefficients (a small table); (2) grad_feat by (b, c) planes
// (no two threads touch one plane: deterministic, no atomics); (3) grad_query_feat
// output-stationary over LR pixels; (4) grad_weights output-stationary over HR pixels.
//
// Regions may overhang feat's bottom/right border (see kernels/graph_aggregate.h): the
// loops over a region row clip at W, rows past H and the clipped tail are
// (0 - shift) * alpha + beta.
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "checks/graph_aggregate.h"
#include "cpu/dispatch.h"
#include "kernels/graph_aggregate.h"

namespace {

using Dims = sr::GraphAggDims;

// Columns of the region row at feat row `row`, starting at column x, that lie inside feat.
inline int64_t valid_cols(const Dims& d, int64_t row, int64_t x) { return row < d.H ? std::min(d.P, d.W - x) : 0; }

// Pass 1: ab[b, q, r, c] = (alpha, beta, shift).
template <typename T, typename Acc>
void affine_table(const T* feat, const T* qf, const int64_t* idx, Acc* ab, const Dims d, bool adapn, Acc eps) {
  const int64_t m = d.m1 * d.m2;
#pragma omp parallel for schedule(static) if (sr_cpu::worth_threads(d.B * m * d.k * d.C * 16))
  for (int64_t bq = 0; bq < d.B * m; ++bq) {
    const int64_t b = bq / m, q = bq % m;
    const int64_t qy = d.t * (q / d.m2), qx = d.t * (q % d.m2);
    for (int64_t c = 0; c < d.C; ++c) {
      const T* fplane = feat + (b * d.C + c) * d.H * d.W;
      const T* qplane = qf + (b * d.C + c) * d.H * d.W;
      Acc sq = 0, dq = 0, vq = 0;
      if (adapn) sr::window_stats<T, Acc>(qplane, d.H, d.W, qy, qx, d.p, &sq, &dq, &vq);
      for (int64_t r = 0; r < d.k; ++r) {
        Acc* out = ab + ((bq * d.k + r) * d.C + c) * sr::kAffineStride;
        if (!adapn) {
          out[0] = Acc(1), out[1] = Acc(0), out[2] = Acc(0);
          continue;
        }
        int64_t y, x;
        sr::region_origin(d, idx[bq * d.k + r], &y, &x);
        Acc dz, vz;
        sr::window_stats<T, Acc>(fplane, d.H, d.W, y, x, d.P, &out[2], &dz, &vz);
        sr::adapn_affine(dz, vz, sq + dq, vq, eps, &out[0], &out[1]);
      }
    }
  }
}

// Pass 2, one HR output row (b, Y) per iteration. out is (B, k, C, HH, WW) without
// weights, else (B, C, HH, WW).
template <typename T, typename Acc>
void fold_rows(const T* feat, const int64_t* idx, const Acc* ab, const T* weights, T* out, const Dims d) {
  const int64_t m = d.m1 * d.m2, planes = weights ? 1 : d.k;
  const auto cy = sr_cpu::axis_counts(d.HH, d.P, d.T, d.m1), cx = sr_cpu::axis_counts(d.WW, d.P, d.T, d.m2);
#pragma omp parallel if (sr_cpu::worth_threads(d.B * d.k * d.C * d.HH * d.WW))
  {
    std::vector<Acc> acc(planes * d.C * d.WW);
#pragma omp for schedule(static)
    for (int64_t row = 0; row < d.B * d.HH; ++row) {
      const int64_t b = row / d.HH, Y = row % d.HH;
      std::fill(acc.begin(), acc.end(), Acc(0));
      int64_t i0, i1;
      sr::cover_range(Y, d.P, d.T, d.m1, &i0, &i1);
      for (int64_t i = i0; i <= i1; ++i) {
        const int64_t u = Y - d.T * i;
        for (int64_t j = 0; j < d.m2; ++j) {
          const int64_t q = b * m + i * d.m2 + j;
          for (int64_t r = 0; r < d.k; ++r) {
            int64_t y, x;
            sr::region_origin(d, idx[q * d.k + r], &y, &x);
            const int64_t nv = valid_cols(d, y + u, x);
            const T* w = weights ? weights + ((b * d.k + r) * d.HH + Y) * d.WW + d.T * j : nullptr;
            Acc* a_r = acc.data() + (weights ? 0 : r * d.C * d.WW) + d.T * j;
            for (int64_t c = 0; c < d.C; ++c) {
              const Acc* abc = ab + ((q * d.k + r) * d.C + c) * sr::kAffineStride;
              const Acc alpha = abc[0], beta = abc[1], shift = abc[2];
              const Acc zero = beta - shift * alpha;  // the overhang's value
              const T* src = feat + ((b * d.C + c) * d.H + y + u) * d.W + x;
              Acc* a = a_r + c * d.WW;
              if (w) {
                for (int64_t v = 0; v < nv; ++v) a[v] += Acc(w[v]) * ((Acc(src[v]) - shift) * alpha + beta);
                for (int64_t v = nv; v < d.P; ++v) a[v] += Acc(w[v]) * zero;
              } else {
                for (int64_t v = 0; v < nv; ++v) a[v] += (Acc(src[v]) - shift) * alpha + beta;
                for (int64_t v = nv; v < d.P; ++v) a[v] += zero;
              }
            }
          }
        }
      }
      for (int64_t pl = 0; pl < planes; ++pl)
        for (int64_t c = 0; c < d.C; ++c) {
          T* o = out + (((b * planes + pl) * d.C + c) * d.HH + Y) * d.WW;
          const Acc* a = acc.data() + (pl * d.C + c) * d.WW;
          for (int64_t X = 0; X < d.WW; ++X) {
            const int64_t n = cy[Y] * cx[X];
            o[X] = n > 0 ? T(a[X] / Acc(n)) : T(0);
          }
        }
    }
  }
}

struct Args {
  at::Tensor feat, idx, qf;
  c10::optional<at::Tensor> weights;
  Dims d;
};

Args prepare(const at::Tensor& feat, const at::Tensor& idx, const at::Tensor& qf,
             const c10::optional<at::Tensor>& weights, int64_t Hk, int64_t Wk, int64_t scale, int64_t p, int64_t t) {
  sr_cpu::check_cpu_float(feat, "feat");
  sr_check::graph_aggregate_args(feat, idx, qf, weights, Hk, Wk, scale, p, t);
  Args a;
  a.d = sr::graph_agg_dims(feat.size(0), feat.size(1), feat.size(2), feat.size(3), idx.size(-1), Wk, scale, p, t);
  a.feat = feat.contiguous();
  a.qf = qf.contiguous();
  a.idx = idx.to(at::kLong).contiguous();
  if (weights.has_value()) {
    a.weights = weights->to(feat.scalar_type()).contiguous();
  }
  return a;
}

at::Tensor graph_aggregate_fwd_cpu(const at::Tensor& feat, const at::Tensor& idx, const at::Tensor& query_feat,
                                   const c10::optional<at::Tensor>& weights, int64_t Hk, int64_t Wk, int64_t scale,
                                   int64_t patch_size, int64_t stride, bool adapn, double eps) {
  const Args a = prepare(feat, idx, query_feat, weights, Hk, Wk, scale, patch_size, stride);
  const Dims& d = a.d;
  at::Tensor out = weights.has_value() ? at::empty({d.B, d.C, d.HH, d.WW}, a.feat.options())
                                       : at::empty({d.B, d.k, d.C, d.HH, d.WW}, a.feat.options());
  AT_DISPATCH_FLOATING_TYPES(a.feat.scalar_type(), "graph_aggregate_fwd_cpu", [&] {
    using Acc = scalar_t;
    std::vector<Acc> ab(d.B * d.m1 * d.m2 * d.k * d.C * sr::kAffineStride);
    affine_table<scalar_t, Acc>(a.feat.const_data_ptr<scalar_t>(), a.qf.const_data_ptr<scalar_t>(),
                                a.idx.const_data_ptr<int64_t>(), ab.data(), d, adapn, Acc(eps));
    fold_rows<scalar_t, Acc>(a.feat.const_data_ptr<scalar_t>(), a.idx.const_data_ptr<int64_t>(), ab.data(),
                             a.weights ? a.weights->const_data_ptr<scalar_t>() : nullptr,
                             out.mutable_data_ptr<scalar_t>(), d);
  });
  return out;
}

// Gradient reaching the normalised value of (q, r, c) at HR pixel (Y, X).
template <typename T, typename Acc>
inline Acc grad_at(const T* grad, const T* weights, const Dims& d, int64_t b, int64_t r, int64_t c, int64_t Y,
                   int64_t X, Acc inv_count) {
  return sr::upstream_grad<T, Acc>(grad, weights, d, b, r, c, Y, X) * inv_count;
}

template <typename T, typename Acc>
void backward(const T* grad, const T* feat, const T* qf, const int64_t* idx, const T* weights, T* g_feat, T* g_qf,
              T* g_w, const Dims d, bool adapn, Acc eps) {
  const int64_t m = d.m1 * d.m2, Nz = d.P * d.P, Nq = d.p * d.p;
  const auto cy = sr_cpu::axis_counts(d.HH, d.P, d.T, d.m1), cx = sr_cpu::axis_counts(d.WW, d.P, d.T, d.m2);
  // gc[b, q, r, c] = (alpha, beta, c1, c2, shift); qc[b, q, c] = (mean coef, var coef,
  // shift_q, dmean_q).
  std::vector<Acc> gc(d.B * m * d.k * d.C * sr::kCoefStride), qc(d.B * m * d.C * sr::kQueryCoefStride, Acc(0));
  const bool threads = sr_cpu::worth_threads(d.B * m * d.k * d.C * Nz);

  // (1) AdaPN gradient coefficients from the sums over each region's HR footprint.
#pragma omp parallel for schedule(static) if (threads)
  for (int64_t bq = 0; bq < d.B * m; ++bq) {
    const int64_t b = bq / m, q = bq % m, i = q / d.m2, j = q % d.m2;
    for (int64_t c = 0; c < d.C; ++c) {
      const T* fplane = feat + (b * d.C + c) * d.H * d.W;
      Acc* qcoef = qc.data() + (bq * d.C + c) * sr::kQueryCoefStride;
      Acc vq = 0;
      if (adapn)
        sr::window_stats<T, Acc>(qf + (b * d.C + c) * d.H * d.W, d.H, d.W, d.t * i, d.t * j, d.p, &qcoef[2], &qcoef[3],
                                 &vq);
      for (int64_t r = 0; r < d.k; ++r) {
        Acc* g = gc.data() + ((bq * d.k + r) * d.C + c) * sr::kCoefStride;
        if (!adapn) {
          g[0] = Acc(1), g[1] = g[2] = g[3] = g[4] = Acc(0);
          continue;
        }
        int64_t y, x;
        sr::region_origin(d, idx[bq * d.k + r], &y, &x);
        Acc shift, dz, vz, alpha, beta, da = 0, db = 0;
        sr::window_stats<T, Acc>(fplane, d.H, d.W, y, x, d.P, &shift, &dz, &vz);
        sr::adapn_affine(dz, vz, qcoef[2] + qcoef[3], vq, eps, &alpha, &beta);
        for (int64_t u = 0; u < d.P; ++u)
          for (int64_t v = 0; v < d.P; ++v) {
            const int64_t Y = d.T * i + u, X = d.T * j + v;
            const Acc gv = grad_at<T, Acc>(grad, weights, d, b, r, c, Y, X, Acc(1) / Acc(cy[Y] * cx[X]));
            da += gv * (sr::region_value<T, Acc>(fplane, d, y + u, x + v) - shift);
            db += gv;
          }
        const auto co = sr::adapn_grad(dz, vz, vq, eps, alpha, da, db, Nz, Nq);
        g[0] = alpha, g[1] = beta, g[2] = co.c1, g[3] = co.c2, g[4] = shift;
        qcoef[0] += co.q_mean_coef;
        qcoef[1] += co.q_var_coef;
      }
    }
  }

  // (2) grad_feat, one (b, c) plane per iteration: regions may overlap anywhere.
#pragma omp parallel for schedule(static) if (threads)
  for (int64_t plane = 0; plane < d.B * d.C; ++plane) {
    const int64_t b = plane / d.C, c = plane % d.C;
    const T* fplane = feat + plane * d.H * d.W;
    std::vector<Acc> acc(d.H * d.W, Acc(0));
    for (int64_t q = 0; q < m; ++q) {
      const int64_t i = q / d.m2, j = q % d.m2;
      for (int64_t r = 0; r < d.k; ++r) {
        int64_t y, x;
        sr::region_origin(d, idx[(b * m + q) * d.k + r], &y, &x);
        const Acc* g = gc.data() + (((b * m + q) * d.k + r) * d.C + c) * sr::kCoefStride;
        for (int64_t u = 0; u < d.P; ++u)
          for (int64_t v = 0; v < valid_cols(d, y + u, x); ++v) {  // the overhang takes no gradient
            const int64_t Y = d.T * i + u, X = d.T * j + v;
            const Acc gv = grad_at<T, Acc>(grad, weights, d, b, r, c, Y, X, Acc(1) / Acc(cy[Y] * cx[X]));
            const int64_t o = (y + u) * d.W + x + v;
            acc[o] += gv * g[0] + g[2] + g[3] * (Acc(fplane[o]) - g[4]);
          }
      }
    }
    for (int64_t o = 0; o < d.H * d.W; ++o) g_feat[plane * d.H * d.W + o] = T(acc[o]);
  }

  // (3) grad_query_feat, output-stationary over LR pixels.
  if (adapn) {
#pragma omp parallel for schedule(static) if (threads)
    for (int64_t row = 0; row < d.B * d.C * d.H; ++row) {
      const int64_t y = row % d.H, c = (row / d.H) % d.C, b = row / (d.H * d.C);
      int64_t i0, i1;
      sr::cover_range(y, d.p, d.t, d.m1, &i0, &i1);
      for (int64_t x = 0; x < d.W; ++x) {
        int64_t j0, j1;
        sr::cover_range(x, d.p, d.t, d.m2, &j0, &j1);
        const Acc val = Acc(qf[row * d.W + x]);
        Acc s = 0;
        for (int64_t i = i0; i <= i1; ++i)
          for (int64_t j = j0; j <= j1; ++j) {
            const Acc* qcoef = qc.data() + ((b * m + i * d.m2 + j) * d.C + c) * sr::kQueryCoefStride;
            s += qcoef[0] + qcoef[1] * ((val - qcoef[2]) - qcoef[3]);
          }
        g_qf[row * d.W + x] = T(s);
      }
    }
  }

  // (4) grad_weights: each neighbour's folded value at the pixel, dotted with grad over C.
  if (weights) {
#pragma omp parallel if (threads)
    {
      std::vector<Acc> acc(d.k * d.WW);
#pragma omp for schedule(static)
      for (int64_t row = 0; row < d.B * d.HH; ++row) {
        const int64_t b = row / d.HH, Y = row % d.HH;
        std::fill(acc.begin(), acc.end(), Acc(0));
        int64_t i0, i1;
        sr::cover_range(Y, d.P, d.T, d.m1, &i0, &i1);
        for (int64_t i = i0; i <= i1; ++i) {
          const int64_t u = Y - d.T * i;
          for (int64_t j = 0; j < d.m2; ++j) {
            const int64_t q = b * m + i * d.m2 + j;
            for (int64_t r = 0; r < d.k; ++r) {
              int64_t y, x;
              sr::region_origin(d, idx[q * d.k + r], &y, &x);
              const int64_t nv = valid_cols(d, y + u, x);
              Acc* a = acc.data() + r * d.WW + d.T * j;
              for (int64_t c = 0; c < d.C; ++c) {
                const Acc* g = gc.data() + ((q * d.k + r) * d.C + c) * sr::kCoefStride;
                const Acc zero = g[1] - g[4] * g[0];  // the overhang's value
                const T* src = feat + ((b * d.C + c) * d.H + y + u) * d.W + x;
                const T* gr = grad + ((b * d.C + c) * d.HH + Y) * d.WW + d.T * j;
                for (int64_t v = 0; v < nv; ++v) a[v] += Acc(gr[v]) * ((Acc(src[v]) - g[4]) * g[0] + g[1]);
                for (int64_t v = nv; v < d.P; ++v) a[v] += Acc(gr[v]) * zero;
              }
            }
          }
        }
        for (int64_t r = 0; r < d.k; ++r) {
          T* o = g_w + ((b * d.k + r) * d.HH + Y) * d.WW;
          for (int64_t X = 0; X < d.WW; ++X) {
            const int64_t n = cy[Y] * cx[X];
            o[X] = n > 0 ? T(acc[r * d.WW + X] / Acc(n)) : T(0);
          }
        }
      }
    }
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> graph_aggregate_bwd_cpu(
    const at::Tensor& grad_out, const at::Tensor& feat, const at::Tensor& idx, const at::Tensor& query_feat,
    const c10::optional<at::Tensor>& weights, int64_t Hk, int64_t Wk, int64_t scale, int64_t patch_size, int64_t stride,
    bool adapn, double eps) {
  const Args a = prepare(feat, idx, query_feat, weights, Hk, Wk, scale, patch_size, stride);
  sr_check::graph_aggregate_grad(grad_out, feat, idx, weights, scale);
  const Dims& d = a.d;
  const at::Tensor grad = grad_out.to(a.feat.scalar_type()).contiguous();
  at::Tensor g_feat = at::empty_like(a.feat), g_qf = at::zeros_like(a.qf);
  at::Tensor g_w = weights.has_value() ? at::empty_like(*a.weights) : at::empty({0}, a.feat.options());
  AT_DISPATCH_FLOATING_TYPES(a.feat.scalar_type(), "graph_aggregate_bwd_cpu", [&] {
    backward<scalar_t, scalar_t>(
        grad.const_data_ptr<scalar_t>(), a.feat.const_data_ptr<scalar_t>(), a.qf.const_data_ptr<scalar_t>(),
        a.idx.const_data_ptr<int64_t>(), a.weights ? a.weights->const_data_ptr<scalar_t>() : nullptr,
        g_feat.mutable_data_ptr<scalar_t>(), g_qf.mutable_data_ptr<scalar_t>(),
        weights.has_value() ? g_w.mutable_data_ptr<scalar_t>() : nullptr, d, adapn, scalar_t(eps));
  });
  return {g_feat, g_qf, g_w};
}

}  // namespace

// The schemas of the kernels below (sr_ops/ops/<op>.py calls them; the CUDA glue registers
// the same names for CUDA tensors).
TORCH_LIBRARY_FRAGMENT(sr_ops, m) {
  // weights given: (B, C, sH, sW) output and a grad_weights; else (B, k, C, sH, sW)
  // and an empty grad_weights.
  m.def(
      "_graph_aggregate_fwd(Tensor feat, Tensor idx, Tensor query_feat, Tensor? weights, int Hk, int Wk, "
      "int scale, int patch_size, int stride, bool adapn, float eps) -> Tensor");
  m.def(
      "_graph_aggregate_bwd(Tensor grad_out, Tensor feat, Tensor idx, Tensor query_feat, Tensor? weights, "
      "int Hk, int Wk, int scale, int patch_size, int stride, bool adapn, float eps) -> (Tensor, Tensor, "
      "Tensor)");
}

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) {
  m.impl("_graph_aggregate_fwd", &graph_aggregate_fwd_cpu);
  m.impl("_graph_aggregate_bwd", &graph_aggregate_bwd_cpu);
}
