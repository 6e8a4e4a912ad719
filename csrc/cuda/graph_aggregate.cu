// graph_aggregate CUDA kernels: the CPU plan with one thread per element, gathers in
// the forward and atomics where the backward scatters into feat / the query table.
// All per-element math comes from csrc/kernels/graph_aggregate.h; regions overhanging
// feat read 0 there (region_value, window_stats) and take no gradient here.
#include "cuda/common.cuh"
#include "cuda/graph_aggregate.cuh"
#include "kernels/convert.h"
#include "kernels/graph_aggregate.h"

namespace sr_cuda {
namespace {

using Dims = sr::GraphAggDims;
constexpr int kThreads = 256;

#define SR_GRID_STRIDE(e, n) \
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < (n); e += int64_t(gridDim.x) * blockDim.x)

// ab[b, q, r, c] = (alpha, beta, shift) of AdaPN.
template <typename T, typename Acc>
__global__ void affine_kernel(const T* feat, const T* qf, const int64_t* idx, Acc* ab, Dims d, Acc eps) {
  const int64_t m = d.m1 * d.m2;
  SR_GRID_STRIDE(e, d.B * m * d.k * d.C) {
    const int64_t c = e % d.C, bqr = e / d.C, bq = bqr / d.k, b = bq / m, q = bq % m;
    const int64_t plane = (b * d.C + c) * d.H * d.W;
    int64_t y, x;
    sr::region_origin(d, idx[bqr], &y, &x);
    Acc* a = ab + sr::kAffineStride * e;
    Acc dz, vz, sq, dq, vq;
    sr::window_stats<T, Acc>(feat + plane, d.H, d.W, y, x, d.P, &a[2], &dz, &vz);
    sr::window_stats<T, Acc>(qf + plane, d.H, d.W, d.t * (q / d.m2), d.t * (q % d.m2), d.p, &sq, &dq, &vq);
    sr::adapn_affine(dz, vz, sq + dq, vq, eps, &a[0], &a[1]);
  }
}

template <typename T, typename Acc>
__device__ __forceinline__ Acc normalised(const T* feat, const int64_t* idx, const Acc* ab, const Dims& d, int64_t b,
                                          int64_t q, int64_t r, int64_t c, int64_t u, int64_t v) {
  int64_t y, x;
  sr::region_origin(d, idx[q * d.k + r], &y, &x);
  const Acc* a = ab + ((q * d.k + r) * d.C + c) * sr::kAffineStride;
  return (sr::region_value<T, Acc>(feat + (b * d.C + c) * d.H * d.W, d, y + u, x + v) - a[2]) * a[0] + a[1];
}

// One thread per output element.
template <typename T, typename Acc>
__global__ void fold_kernel(const T* feat, const int64_t* idx, const Acc* ab, const T* weights, T* out, Dims d) {
  const int64_t planes = weights ? 1 : d.k, m = d.m1 * d.m2;
  SR_GRID_STRIDE(e, d.B * planes * d.C * d.HH * d.WW) {
    const int64_t X = e % d.WW, Y = (e / d.WW) % d.HH, c = (e / (d.WW * d.HH)) % d.C;
    const int64_t bp = e / (d.WW * d.HH * d.C), b = bp / planes, pl = bp % planes;
    int64_t i0, i1, j0, j1;
    sr::cover_range(Y, d.P, d.T, d.m1, &i0, &i1);
    sr::cover_range(X, d.P, d.T, d.m2, &j0, &j1);
    Acc acc = Acc(0);
    for (int64_t i = i0; i <= i1; ++i)
      for (int64_t j = j0; j <= j1; ++j) {
        const int64_t q = b * m + i * d.m2 + j;
        if (weights) {
          for (int64_t r = 0; r < d.k; ++r)
            acc += sr_cast<Acc>(weights[((b * d.k + r) * d.HH + Y) * d.WW + X]) *
                   normalised<T, Acc>(feat, idx, ab, d, b, q, r, c, Y - d.T * i, X - d.T * j);
        } else {
          acc += normalised<T, Acc>(feat, idx, ab, d, b, q, pl, c, Y - d.T * i, X - d.T * j);
        }
      }
    const int64_t n = sr::hr_count(d, Y, X);
    out[e] = n > 0 ? sr_cast<T>(acc / Acc(n)) : sr_cast<T>(0);
  }
}

// Backward (1): coef[b, q, r, c] = (alpha, beta, c1, c2, shift); qcoef[b, q, c] += query
// terms (and its shift_q, dmean_q).
template <typename T, typename Acc>
__global__ void coef_kernel(const T* grad, const T* weights, const T* feat, const T* qf, const int64_t* idx, Acc* coef,
                            Acc* qcoef, Dims d, bool adapn, Acc eps) {
  const int64_t m = d.m1 * d.m2;
  SR_GRID_STRIDE(e, d.B * m * d.k * d.C) {
    const int64_t c = e % d.C, bqr = e / d.C, r = bqr % d.k, bq = bqr / d.k;
    const int64_t b = bq / m, q = bq % m, i = q / d.m2, j = q % d.m2;
    Acc* g = coef + sr::kCoefStride * e;
    if (!adapn) {
      g[0] = Acc(1), g[1] = g[2] = g[3] = g[4] = Acc(0);
      continue;
    }
    const int64_t plane = (b * d.C + c) * d.H * d.W;
    int64_t y, x;
    sr::region_origin(d, idx[bqr], &y, &x);
    Acc shift, dz, vz, sq, dq, vq, alpha, beta, da = 0, db = 0;
    sr::window_stats<T, Acc>(feat + plane, d.H, d.W, y, x, d.P, &shift, &dz, &vz);
    sr::window_stats<T, Acc>(qf + plane, d.H, d.W, d.t * i, d.t * j, d.p, &sq, &dq, &vq);
    sr::adapn_affine(dz, vz, sq + dq, vq, eps, &alpha, &beta);
    for (int64_t u = 0; u < d.P; ++u)
      for (int64_t v = 0; v < d.P; ++v) {
        const int64_t Y = d.T * i + u, X = d.T * j + v;
        const Acc gv = sr::upstream_grad<T, Acc>(grad, weights, d, b, r, c, Y, X) / Acc(sr::hr_count(d, Y, X));
        da += gv * (sr::region_value<T, Acc>(feat + plane, d, y + u, x + v) - shift);
        db += gv;
      }
    const auto co = sr::adapn_grad(dz, vz, vq, eps, alpha, da, db, d.P * d.P, d.p * d.p);
    g[0] = alpha, g[1] = beta, g[2] = co.c1, g[3] = co.c2, g[4] = shift;
    Acc* qc = qcoef + (bq * d.C + c) * sr::kQueryCoefStride;
    atomicAdd(qc, co.q_mean_coef);
    atomicAdd(qc + 1, co.q_var_coef);
    if (r == 0) qc[2] = sq, qc[3] = dq;
  }
}

// Backward (2): grad_feat, one thread per (b, q, r, c, u, v), atomics.
template <typename T, typename Acc>
__global__ void feat_grad_kernel(const T* grad, const T* weights, const T* feat, const int64_t* idx, const Acc* coef,
                                 Acc* gfeat, Dims d) {
  const int64_t m = d.m1 * d.m2, PP = d.P * d.P;
  SR_GRID_STRIDE(e, d.B * m * d.k * d.C * PP) {
    const int64_t v = e % d.P, u = (e / d.P) % d.P, bqrc = e / PP, c = bqrc % d.C;
    const int64_t bqr = bqrc / d.C, r = bqr % d.k, bq = bqr / d.k, b = bq / m, q = bq % m;
    const int64_t Y = d.T * (q / d.m2) + u, X = d.T * (q % d.m2) + v;
    int64_t y, x;
    sr::region_origin(d, idx[bqr], &y, &x);
    if (y + u >= d.H || x + v >= d.W) continue;  // the overhang reads 0: no gradient
    const int64_t o = ((b * d.C + c) * d.H + y + u) * d.W + x + v;
    const Acc* g = coef + sr::kCoefStride * bqrc;
    const Acc gv = sr::upstream_grad<T, Acc>(grad, weights, d, b, r, c, Y, X) / Acc(sr::hr_count(d, Y, X));
    atomicAdd(gfeat + o, gv * g[0] + g[2] + g[3] * (sr_cast<Acc>(feat[o]) - g[4]));
  }
}

// Backward (3): grad_query_feat, one thread per LR pixel.
template <typename T, typename Acc>
__global__ void query_grad_kernel(const T* qf, const Acc* qcoef, T* gq, Dims d) {
  const int64_t m = d.m1 * d.m2;
  SR_GRID_STRIDE(e, d.B * d.C * d.H * d.W) {
    const int64_t x = e % d.W, y = (e / d.W) % d.H, c = (e / (d.W * d.H)) % d.C, b = e / (d.W * d.H * d.C);
    int64_t i0, i1, j0, j1;
    sr::cover_range(y, d.p, d.t, d.m1, &i0, &i1);
    sr::cover_range(x, d.p, d.t, d.m2, &j0, &j1);
    const Acc val = sr_cast<Acc>(qf[e]);
    Acc s = Acc(0);
    for (int64_t i = i0; i <= i1; ++i)
      for (int64_t j = j0; j <= j1; ++j) {
        const Acc* qc = qcoef + ((b * m + i * d.m2 + j) * d.C + c) * sr::kQueryCoefStride;
        s += qc[0] + qc[1] * ((val - qc[2]) - qc[3]);
      }
    gq[e] = sr_cast<T>(s);
  }
}

// Backward (4): grad_weights[b, r, Y, X] = sum_c grad[b, c, Y, X] * folded_r[c, Y, X].
template <typename T, typename Acc>
__global__ void weight_grad_kernel(const T* grad, const T* feat, const int64_t* idx, const Acc* coef, T* gw, Dims d) {
  const int64_t m = d.m1 * d.m2;
  SR_GRID_STRIDE(e, d.B * d.k * d.HH * d.WW) {
    const int64_t X = e % d.WW, Y = (e / d.WW) % d.HH, r = (e / (d.WW * d.HH)) % d.k;
    const int64_t b = e / (d.WW * d.HH * d.k);
    int64_t i0, i1, j0, j1;
    sr::cover_range(Y, d.P, d.T, d.m1, &i0, &i1);
    sr::cover_range(X, d.P, d.T, d.m2, &j0, &j1);
    Acc acc = Acc(0);
    for (int64_t i = i0; i <= i1; ++i)
      for (int64_t j = j0; j <= j1; ++j) {
        const int64_t q = b * m + i * d.m2 + j;
        int64_t y, x;
        sr::region_origin(d, idx[q * d.k + r], &y, &x);
        for (int64_t c = 0; c < d.C; ++c) {
          const Acc* g = coef + ((q * d.k + r) * d.C + c) * sr::kCoefStride;
          const Acc z = sr::region_value<T, Acc>(feat + (b * d.C + c) * d.H * d.W, d, y + Y - d.T * i, x + X - d.T * j);
          acc += sr_cast<Acc>(grad[((b * d.C + c) * d.HH + Y) * d.WW + X]) * ((z - g[4]) * g[0] + g[1]);
        }
      }
    const int64_t n = sr::hr_count(d, Y, X);
    gw[e] = n > 0 ? sr_cast<T>(acc / Acc(n)) : sr_cast<T>(0);
  }
}

template <typename T, typename Acc>
__global__ void fill_identity_kernel(Acc* ab, int64_t n) {
  SR_GRID_STRIDE(e, n) {
    ab[sr::kAffineStride * e] = Acc(1), ab[sr::kAffineStride * e + 1] = ab[sr::kAffineStride * e + 2] = Acc(0);
  }
}

Dims dims_of(const GraphAggShape& s) {
  return sr::graph_agg_dims(s.B, s.C, s.H, s.W, s.k, s.Wk, s.scale, s.patch_size, s.stride);
}

}  // namespace

Status graph_aggregate_fwd(const void* feat, const int64_t* idx, const void* query_feat, const void* weights,
                           void* affine, void* out, DType dtype, GraphAggShape s, bool adapn, double eps,
                           cudaStream_t stream) {
  const Dims d = dims_of(s);
  const int64_t nab = d.B * d.m1 * d.m2 * d.k * d.C;
  const int64_t nout = d.B * (weights ? 1 : d.k) * d.C * d.HH * d.WW;
  if (nout == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using Acc = typename AccOf<T>::type;
    Acc* ab = static_cast<Acc*>(affine);
    if (adapn)
      SR_LAUNCH(blocks_for(nab, kThreads), kThreads, 0, stream, affine_kernel<T, Acc>)(
          static_cast<const T*>(feat), static_cast<const T*>(query_feat), idx, ab, d, Acc(eps));
    else
      SR_LAUNCH(blocks_for(nab, kThreads), kThreads, 0, stream, fill_identity_kernel<T, Acc>)(ab, nab);
    SR_LAUNCH(blocks_for(nout, kThreads), kThreads, 0, stream, fold_kernel<T, Acc>)(
        static_cast<const T*>(feat), idx, ab, static_cast<const T*>(weights), static_cast<T*>(out), d);
  });
  return last_error();
}

Status graph_aggregate_bwd(const void* grad, const void* feat, const int64_t* idx, const void* query_feat,
                           const void* weights, void* coef, void* qcoef, void* grad_feat_acc, void* grad_query_feat,
                           void* grad_weights, DType dtype, GraphAggShape s, bool adapn, double eps,
                           cudaStream_t stream) {
  const Dims d = dims_of(s);
  const int64_t ncoef = d.B * d.m1 * d.m2 * d.k * d.C;
  if (ncoef == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using Acc = typename AccOf<T>::type;
    const T *g = static_cast<const T*>(grad), *f = static_cast<const T*>(feat);
    const T* w = static_cast<const T*>(weights);
    Acc *co = static_cast<Acc*>(coef), *qc = static_cast<Acc*>(qcoef);
    SR_LAUNCH(blocks_for(ncoef, kThreads), kThreads, 0, stream, coef_kernel<T, Acc>)(
        g, w, f, static_cast<const T*>(query_feat), idx, co, qc, d, adapn, Acc(eps));
    const int64_t nf = ncoef * d.P * d.P;
    SR_LAUNCH(blocks_for(nf, kThreads), kThreads, 0, stream, feat_grad_kernel<T, Acc>)(
        g, w, f, idx, co, static_cast<Acc*>(grad_feat_acc), d);
    if (adapn) {
      const int64_t nq = d.B * d.C * d.H * d.W;
      SR_LAUNCH(blocks_for(nq, kThreads), kThreads, 0, stream, query_grad_kernel<T, Acc>)(
          static_cast<const T*>(query_feat), qc, static_cast<T*>(grad_query_feat), d);
    }
    if (w) {
      const int64_t nw = d.B * d.k * d.HH * d.WW;
      SR_LAUNCH(blocks_for(nw, kThreads), kThreads, 0, stream, weight_grad_kernel<T, Acc>)(
          g, f, idx, co, static_cast<T*>(grad_weights), d);
    }
  });
  return last_error();
}

}  // namespace sr_cuda
