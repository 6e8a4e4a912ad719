// graph_aggregate CUDA kernels: the CPU plan with one thread per element, gathers
// throughout, no float atomics (the backward is deterministic, run to run).
// All per-element math comes from csrc/kernels/graph_aggregate.h; regions overhanging
// feat read 0 there (region_value, window_stats) and take no gradient here.
//
// Backward: (1) one thread per (b, q, c) computes the AdaPN gradient coefficients of its k
// neighbours in r order and sums their query terms in that order (no atomics); (2)
// grad_feat is output-stationary through an inverse index the glue builds
// (csrc/cuda/inverse_index.h: the (b, q, r) entries stably sorted by key patch, and each key's
// first entry; memory 4 index values per entry and B * n + 1 offsets): each feat pixel sums
// the <= ceil(p/t)^2 key regions covering it and each one's entries in (q, r) order;
// (3) grad_query_feat and (4) grad_weights are output-stationary over pixels. Index math
// of (1) and (2) is 32-bit unless a tensor reaches 2^31 elements (chosen at launch).
#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/gather_index.cuh"
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

// Index math of the backward's gathers in I (int32_t unless a tensor is huge).
template <typename I>
struct GradDims {
  I B, C, H, W, k, p, t, P, T, m1, m2, n1, n2, HH, WW;
};

// How many HR patches (P every T, m of them) hold Y = T * i + u, u in [0, P): hi and lo
// relative to i, from u alone, so the inner loops divide only once per region.
template <typename I>
struct Cover {
  I hi, lo;
  __device__ __forceinline__ Cover(I u, I P, I T) : hi(u / T), lo(I(1) - (P - u + T - 1) / T) {}
  __device__ __forceinline__ I count(I i, I m) const {
    const I top = i + hi < m - 1 ? i + hi : m - 1, bottom = i + lo > 0 ? i + lo : I(0);
    return top - bottom + 1;
  }
};

// Gradient reaching neighbour r's normalised value at HR pixel (Y, X), before the coverage.
template <bool kWeighted, typename T, typename Acc, typename I>
__device__ __forceinline__ Acc upstream(const T* grad, const T* weights, const GradDims<I>& d, I b, I r, I c, I Y,
                                        I X) {
  if (kWeighted)
    return sr_cast<Acc>(grad[((b * d.C + c) * d.HH + Y) * d.WW + X]) *
           sr_cast<Acc>(weights[((b * d.k + r) * d.HH + Y) * d.WW + X]);
  return sr_cast<Acc>(grad[(((b * d.k + r) * d.C + c) * d.HH + Y) * d.WW + X]);
}

// Backward (1): coef[b, q, r, c] = (alpha, beta, c1, c2, shift) for r = 0..k-1, and
// qcoef[b, q, c] = (sum over r of the query mean and var terms, shift_q, dmean_q). One
// thread per (b, c, q): the sums over r run in r order.
template <bool kWeighted, typename T, typename Acc, typename I>
__global__ void coef_kernel(const T* grad, const T* weights, const T* feat, const T* qf, const int64_t* idx, Acc* coef,
                            Acc* qcoef, GradDims<I> d, Acc eps) {
  const I m = d.m1 * d.m2, q = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x);
  if (q >= m) return;
  const I i = q / d.m2, j = q - i * d.m2;
  for (I plane = I(blockIdx.y); plane < d.B * d.C; plane += I(gridDim.y)) {
    const I b = plane / d.C, c = plane - b * d.C, bq = b * m + q;
    const T* fplane = feat + plane * (d.H * d.W);
    Acc sq, dq, vq, qm = Acc(0), qv = Acc(0);
    sr::window_stats<T, Acc>(qf + plane * (d.H * d.W), d.H, d.W, d.t * i, d.t * j, d.p, &sq, &dq, &vq);
    for (I r = 0; r < d.k; ++r) {
      const I n = I(idx[bq * d.k + r]), a = n / d.n2, y = d.T * a, x = d.T * (n - a * d.n2);
      Acc shift, dz, vz, alpha, beta, da = Acc(0), db = Acc(0);
      sr::window_stats<T, Acc>(fplane, d.H, d.W, y, x, d.P, &shift, &dz, &vz);
      sr::adapn_affine(dz, vz, sq + dq, vq, eps, &alpha, &beta);
      for (I u = 0; u < d.P; ++u) {
        const I cy = Cover<I>(u, d.P, d.T).count(i, d.m1);
        for (I v = 0; v < d.P; ++v) {
          const I Y = d.T * i + u, X = d.T * j + v;
          const Acc gv = upstream<kWeighted, T, Acc>(grad, weights, d, b, r, c, Y, X) /
                         Acc(cy * Cover<I>(v, d.P, d.T).count(j, d.m2));
          // the overhang reads 0
          const Acc z = (y + u < d.H && x + v < d.W) ? sr_cast<Acc>(fplane[(y + u) * d.W + x + v]) : Acc(0);
          da += gv * (z - shift);
          db += gv;
        }
      }
      const auto co = sr::adapn_grad(dz, vz, vq, eps, alpha, da, db, d.P * d.P, d.p * d.p);
      Acc* g = coef + ((bq * d.k + r) * d.C + c) * sr::kCoefStride;
      g[0] = alpha, g[1] = beta, g[2] = co.c1, g[3] = co.c2, g[4] = shift;
      qm += co.q_mean_coef;
      qv += co.q_var_coef;
    }
    Acc* qc = qcoef + (bq * d.C + c) * sr::kQueryCoefStride;
    qc[0] = qm, qc[1] = qv, qc[2] = sq, qc[3] = dq;
  }
}

// Without AdaPN: the identity coefficients.
template <typename Acc>
__global__ void identity_coef_kernel(Acc* coef, int64_t n) {
  SR_GRID_STRIDE(e, n) {
    Acc* g = coef + sr::kCoefStride * e;
    g[0] = Acc(1), g[1] = g[2] = g[3] = g[4] = Acc(0);
  }
}

// Backward (2): grad_feat, one thread per feat pixel (b, c, y, x): the key regions covering
// it (row, then column), each one's entries (e = (b, q, r), r, query patch row i, column j)
// in (q, r) order.
template <bool kWeighted, typename T, typename Acc, typename I>
__global__ void feat_grad_kernel(const T* grad, const T* weights, const T* feat, const Acc* coef, const I* start,
                                 const Entry<I>* entries, T* gfeat, GradDims<I> d) {
  const I HW = d.H * d.W, pix = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x);
  if (pix >= HW) return;
  const I y = pix / d.W, x = pix - y * d.W;
  I a0, a1, c0, c1;
  covering(y, d.P, d.T, d.n1, &a0, &a1);
  covering(x, d.P, d.T, d.n2, &c0, &c1);
  for (I plane = I(blockIdx.y); plane < d.B * d.C; plane += I(gridDim.y)) {
    const I b = plane / d.C, c = plane - b * d.C;
    const Acc f = sr_cast<Acc>(feat[plane * HW + pix]);
    Acc acc = Acc(0);
    for (I a = a0; a <= a1; ++a) {
      const I u = y - d.T * a;
      const Cover<I> cu(u, d.P, d.T);
      for (I kc = c0; kc <= c1; ++kc) {
        const I v = x - d.T * kc, id = (b * d.n1 + a) * d.n2 + kc;
        const Cover<I> cv(v, d.P, d.T);
        const I s1 = start[id + 1];
        for (I s = start[id]; s < s1; ++s) {
          const Entry<I> en = entries[s];
          const Acc gv = upstream<kWeighted, T, Acc>(grad, weights, d, b, en.r, c, d.T * en.i + u, d.T * en.j + v) /
                         Acc(cu.count(en.i, d.m1) * cv.count(en.j, d.m2));
          const Acc* g = coef + (en.e * d.C + c) * sr::kCoefStride;
          acc += gv * g[0] + g[2] + g[3] * (f - g[4]);
        }
      }
    }
    gfeat[plane * HW + pix] = sr_cast<T>(acc);
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
                           const void* weights, const void* start, const void* entries, void* coef, void* qcoef,
                           void* grad_feat, void* grad_query_feat, void* grad_weights, DType dtype, GraphAggShape s,
                           bool adapn, double eps, bool wide, cudaStream_t stream) {
  const Dims d = dims_of(s);
  const int64_t ncoef = d.B * d.m1 * d.m2 * d.k * d.C;
  if (ncoef == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using Acc = typename AccOf<T>::type;
    const T *g = static_cast<const T*>(grad), *f = static_cast<const T*>(feat);
    const T* w = static_cast<const T*>(weights);
    Acc *co = static_cast<Acc*>(coef), *qc = static_cast<Acc*>(qcoef);
    auto gathers = [&](auto index_tag, auto weighted) {
      using I = decltype(index_tag);
      constexpr bool kW = decltype(weighted)::value;
      GradDims<I> gd;
      gd.B = I(d.B), gd.C = I(d.C), gd.H = I(d.H), gd.W = I(d.W), gd.k = I(d.k), gd.p = I(d.p), gd.t = I(d.t);
      gd.P = I(d.P), gd.T = I(d.T), gd.m1 = I(d.m1), gd.m2 = I(d.m2), gd.n1 = I(sr::grid_len(s.Hk, d.p, d.t));
      gd.n2 = I(d.n2), gd.HH = I(d.HH), gd.WW = I(d.WW);
      if (adapn)
        SR_LAUNCH(plane_grid(d.m1 * d.m2, d.B * d.C, kThreads), kThreads, 0, stream, coef_kernel<kW, T, Acc, I>)(
            g, w, f, static_cast<const T*>(query_feat), idx, co, qc, gd, Acc(eps));
      else
        SR_LAUNCH(blocks_for(ncoef, kThreads), kThreads, 0, stream, identity_coef_kernel<Acc>)(co, ncoef);
      SR_LAUNCH(plane_grid(d.H * d.W, d.B * d.C, kThreads), kThreads, 0, stream, feat_grad_kernel<kW, T, Acc, I>)(
          g, w, f, co, static_cast<const I*>(start), static_cast<const Entry<I>*>(entries), static_cast<T*>(grad_feat),
          gd);
    };
    using Weighted = std::true_type;
    using Plain = std::false_type;
    if (wide)
      w ? gathers(int64_t{}, Weighted{}) : gathers(int64_t{}, Plain{});
    else
      w ? gathers(int32_t{}, Weighted{}) : gathers(int32_t{}, Plain{});
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
