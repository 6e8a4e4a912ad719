// cross_scale_knn CUDA kernels.
//
// Forward: one block per 8x8 tile of query patches, 256 threads. The union of the
// tile's windows is walked as a flat list of candidates, 32 at a time; the tile's
// patch vectors and the chunk's are staged through shared memory 32 elements at a time
// (gathered from the maps: nothing is unfolded) and each thread accumulates 8 dot
// products. Distances go through shared memory to one thread per query, which keeps a
// running set of the k + kSpare best by the expansion in registers, with bounds (the
// expansion is off by at most tol * (||q||^2 + ||c||^2)) and the smallest lower bound of
// every candidate left out. If that stays above the k-th smallest upper bound in the set,
// the k nearest (ties included) are in the set, and measuring its members exactly as
// sum((q - c)^2) picks them, ties to the smaller index. Otherwise (more near-ties than
// spare slots, as in flat regions) or when an expansion is not finite (a patch holding inf
// or NaN), the owner measures its whole window directly; NaN distances rank last.
// The backward is in cross_scale_knn_backward.cu.
#include "cuda/common.cuh"
#include "cuda/cross_scale_knn.cuh"
#include "kernels/convert.h"
#include "kernels/cross_scale_knn.h"

namespace sr_cuda {
namespace {

constexpr int kTI = 8, kTJ = 8, kQ = kTI * kTJ, kBN = 32, kBD = 32, kThreads = 256;
constexpr int kPerThread = kBN * kQ / kThreads;  // dot products per thread per chunk
constexpr int kSpare = 4;                        // set slots beyond k, for near-ties

template <typename T>
__device__ __forceinline__ const T* patch_elem(const T* map, int64_t H, int64_t W, int64_t P, int64_t y, int64_t x,
                                               int64_t e) {
  const int64_t c = e / (P * P), dy = (e / P) % P, dx = e % P;
  return map + (c * H + y + dy) * W + x + dx;
}

// sum((q - c)^2) over the patch vectors of query patch (qi, qj) and key patch (a, cb).
template <typename T, typename Acc>
__device__ Acc patch_sq_dist(const T* qmap, const T* kmap, const sr::KnnDims& d, int64_t qi, int64_t qj, int64_t a,
                             int64_t cb) {
  Acc sum = Acc(0);
  for (int64_t e = 0; e < d.C * d.P * d.P; ++e) {
    const Acc diff = sr_cast<Acc>(*patch_elem(qmap, d.H, d.W, d.P, d.T * qi, d.T * qj, e)) -
                     sr_cast<Acc>(*patch_elem(kmap, d.Hk, d.Wk, d.P, d.T * a, d.T * cb, e));
    sum += diff * diff;
  }
  return sum;
}

template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads)
    knn_fwd_kernel(const T* __restrict__ query, const T* __restrict__ key, Acc* __restrict__ dist,
                   int64_t* __restrict__ idx, sr::KnnDims d, int64_t k, Acc tol, Acc tiny) {
  __shared__ Acc Qs[kQ][kBD + 1];
  __shared__ Acc Ks[kBN][kBD + 1];
  __shared__ Acc Ds[kQ][kBN + 1];
  __shared__ Acc qn[kQ], cn[kBN];

  const int64_t t1 = (d.m1 + kTI - 1) / kTI, t2 = (d.m2 + kTJ - 1) / kTJ;
  const int64_t b = blockIdx.x / (t1 * t2);
  const int64_t i0 = ((blockIdx.x / t2) % t1) * kTI, j0 = (blockIdx.x % t2) * kTJ;
  const int64_t i1 = sr::imin(d.m1, i0 + kTI), j1 = sr::imin(d.m2, j0 + kTJ);
  const int64_t D = d.C * d.P * d.P;
  const T* qmap = query + b * d.C * d.H * d.W;
  const T* kmap = key + b * d.C * d.Hk * d.Wk;
  const int tid = threadIdx.x;

  const int64_t a_lo = sr::window_start(i0, d.S, d.half, d.n1, d.w1);
  const int64_t nrow = sr::window_start(i1 - 1, d.S, d.half, d.n1, d.w1) + d.w1 - a_lo;
  const int64_t c_lo = sr::window_start(j0, d.S, d.half, d.n2, d.w2);
  const int64_t ncol = sr::window_start(j1 - 1, d.S, d.half, d.n2, d.w2) + d.w2 - c_lo;
  const int64_t ncand = nrow * ncol;

  // Thread tid < kQ owns query (i, j) for the top-k; every thread helps with the dots.
  const int64_t qi = i0 + tid / kTJ, qj = j0 + tid % kTJ;
  const bool owner = tid < kQ && qi < i1 && qj < j1;
  const int dq = tid / (kThreads / kQ), dc = (tid % (kThreads / kQ)) * kPerThread;

  // The set, sorted by (expansion, index); lo/hi: its members' bounds.
  const int64_t kx = k + kSpare;
  Acc best_d[kKnnMaxK + kSpare], best_lo[kKnnMaxK + kSpare], best_hi[kKnnMaxK + kSpare];
  int64_t best_i[kKnnMaxK + kSpare];
  sr::topk_reset(best_d, best_i, kx);
  const Acc inf = Acc(__builtin_huge_val());
  for (int64_t s = 0; s < kx; ++s) best_lo[s] = best_hi[s] = inf;
  Acc out_lo = inf;     // smallest lower bound left out of the set
  bool unsure = false;  // an expansion was not finite
  int64_t a0 = 0, b0 = 0;
  if (owner) {
    a0 = sr::window_start(qi, d.S, d.half, d.n1, d.w1);
    b0 = sr::window_start(qj, d.S, d.half, d.n2, d.w2);
  }

  for (int64_t t0 = 0; t0 < ncand; t0 += kBN) {
    Acc acc[kPerThread];
    for (int u = 0; u < kPerThread; ++u) acc[u] = Acc(0);
    Acc qsq = Acc(0), csq = Acc(0);
    for (int64_t e0 = 0; e0 < D; e0 += kBD) {
      for (int v = tid; v < kQ * kBD; v += kThreads) {
        const int r = v / kBD, e = v % kBD;
        const int64_t i = i0 + r / kTJ, j = j0 + r % kTJ;
        Qs[r][e] = (i < i1 && j < j1 && e0 + e < D)
                       ? sr_cast<Acc>(*patch_elem(qmap, d.H, d.W, d.P, d.T * i, d.T * j, e0 + e))
                       : Acc(0);
      }
      for (int v = tid; v < kBN * kBD; v += kThreads) {
        const int c = v / kBD, e = v % kBD;
        const int64_t t = t0 + c;
        const int64_t a = a_lo + t / (ncol > 0 ? ncol : 1), cb = c_lo + t % (ncol > 0 ? ncol : 1);
        Ks[c][e] = (t < ncand && e0 + e < D)
                       ? sr_cast<Acc>(*patch_elem(kmap, d.Hk, d.Wk, d.P, d.T * a, d.T * cb, e0 + e))
                       : Acc(0);
      }
      __syncthreads();
      if (tid < kQ && t0 == 0)
        for (int e = 0; e < kBD; ++e) qsq += Qs[tid][e] * Qs[tid][e];
      if (tid < kBN)
        for (int e = 0; e < kBD; ++e) csq += Ks[tid][e] * Ks[tid][e];
      for (int e = 0; e < kBD; ++e) {
        const Acc qv = Qs[dq][e];
        for (int u = 0; u < kPerThread; ++u) acc[u] += qv * Ks[dc + u][e];
      }
      __syncthreads();
    }
    if (tid < kQ && t0 == 0) qn[tid] = qsq;
    if (tid < kBN) cn[tid] = csq;
    __syncthreads();
    for (int u = 0; u < kPerThread; ++u) Ds[dq][dc + u] = sr::sq_dist_from_dot(qn[dq], cn[dc + u], acc[u]);
    __syncthreads();
    if (owner) {
      for (int c = 0; c < kBN && t0 + c < ncand; ++c) {
        const int64_t a = a_lo + (t0 + c) / ncol, cb = c_lo + (t0 + c) % ncol;
        if (a < a0 || a >= a0 + d.w1 || cb < b0 || cb >= b0 + d.w2) continue;
        const Acc v = Ds[tid][c], e = tol * (qn[tid] + cn[c]) + tiny;
        if (!(v + e < inf)) {
          unsure = true;
          continue;
        }
        const int64_t id = a * d.n2 + cb;
        if (!sr::knn_before(v, id, best_d[kx - 1], best_i[kx - 1])) {
          out_lo = v - e < out_lo ? v - e : out_lo;
          continue;
        }
        out_lo = best_lo[kx - 1] < out_lo ? best_lo[kx - 1] : out_lo;
        int64_t pos = kx - 1;
        for (; pos > 0 && sr::knn_before(v, id, best_d[pos - 1], best_i[pos - 1]); --pos) {
          best_d[pos] = best_d[pos - 1];
          best_i[pos] = best_i[pos - 1];
          best_lo[pos] = best_lo[pos - 1];
          best_hi[pos] = best_hi[pos - 1];
        }
        best_d[pos] = v;
        best_i[pos] = id;
        best_lo[pos] = v - e;
        best_hi[pos] = v + e;
      }
    }
    __syncthreads();
  }

  if (!owner) return;
  const int64_t q = qi * d.m2 + qj;
  // The k-th smallest upper bound in the set bounds the k-th nearest distance.
  for (int64_t s = 1; s < kx; ++s)
    for (int64_t p = s; p > 0 && best_hi[p] < best_hi[p - 1]; --p) {
      const Acc h = best_hi[p];
      best_hi[p] = best_hi[p - 1];
      best_hi[p - 1] = h;
    }
  Acc top_d[kKnnMaxK];
  int64_t top_i[kKnnMaxK];
  sr::topk_reset(top_d, top_i, k);
  if (unsure || out_lo <= best_hi[k - 1]) {
    for (int64_t a = a0; a < a0 + d.w1; ++a)
      for (int64_t cb = b0; cb < b0 + d.w2; ++cb)
        sr::topk_insert(top_d, top_i, k, patch_sq_dist<T, Acc>(qmap, kmap, d, qi, qj, a, cb), a * d.n2 + cb);
  } else {
    for (int64_t s = 0; s < kx; ++s)
      if (best_i[s] != INT64_MAX)
        sr::topk_insert(top_d, top_i, k,
                        patch_sq_dist<T, Acc>(qmap, kmap, d, qi, qj, best_i[s] / d.n2, best_i[s] % d.n2), best_i[s]);
  }
  for (int s = 0; s < k; ++s) {
    best_d[s] = top_d[s];
    best_i[s] = top_i[s];
  }
  for (int s = 0; s < k; ++s) {
    dist[(b * d.m1 * d.m2 + q) * k + s] = best_d[s];
    idx[(b * d.m1 * d.m2 + q) * k + s] = best_i[s];
  }
}

// Bound on |expansion - exact| / (||q||^2 + ||c||^2) for D-long patch vectors: D-term
// rounding in the norms, the dot and the direct sum (the CPU kernel's bound).
template <typename Acc>
Acc tol(int64_t D) {
  return Acc(4 * D + 16) * (sizeof(Acc) == 8 ? Acc(2.220446049250313e-16) : Acc(1.1920928955078125e-07));
}
template <typename Acc>
Acc tiny() {
  return sizeof(Acc) == 8 ? Acc(2.2250738585072014e-308) : Acc(1.1754943508222875e-38);
}

}  // namespace

Status cross_scale_knn_fwd(const void* query, const void* key, void* dist, int64_t* idx, DType dtype, int64_t B,
                           int64_t C, int64_t H, int64_t W, int64_t Hk, int64_t Wk, int64_t k, int64_t P, int64_t T,
                           int64_t window, int64_t scale, int64_t window_offset, cudaStream_t stream) {
  if (k > kKnnMaxK) return "k is larger than the CUDA kernel's limit of 32";
  const auto d = sr::knn_dims(B, C, H, W, Hk, Wk, P, T, scale, window, window_offset);
  const int64_t blocks = B * ((d.m1 + kTI - 1) / kTI) * ((d.m2 + kTJ - 1) / kTJ);
  if (blocks == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using Tv = decltype(tag);
    using Acc = typename AccOf<Tv>::type;
    SR_LAUNCH(static_cast<unsigned>(blocks), kThreads, 0, stream, knn_fwd_kernel<Tv, Acc>)(
        static_cast<const Tv*>(query), static_cast<const Tv*>(key), static_cast<Acc*>(dist), idx, d, k,
        tol<Acc>(C * P * P), Acc(4 * C * P * P) * tiny<Acc>());
  });
  return last_error();
}

}  // namespace sr_cuda
