// cross_scale_knn CUDA kernels.
//
// Forward: one block per 8x8 tile of query patches, 256 threads. The union of the
// tile's windows is walked as a flat list of candidates, 32 at a time; the tile's
// patch vectors and the chunk's are staged through shared memory 32 elements at a time
// (gathered from the maps: nothing is unfolded) and each thread accumulates 8 dot
// products. Distances go through shared memory to one thread per query, which keeps a
// running top-k in registers (shared sr::topk_insert). The winners' exact distances
// are recomputed at the end.
// Backward: one thread per (query, neighbour, patch element), atomics into the
// accumulation-type gradients.
#include "cuda/common.cuh"
#include "cuda/cross_scale_knn.cuh"
#include "kernels/convert.h"
#include "kernels/cross_scale_knn.h"

namespace sr_cuda {
namespace {

constexpr int kTI = 8, kTJ = 8, kQ = kTI * kTJ, kBN = 32, kBD = 32, kThreads = 256;
constexpr int kPerThread = kBN * kQ / kThreads;  // dot products per thread per chunk

template <typename T>
__device__ __forceinline__ const T* patch_elem(const T* map, int64_t H, int64_t W, int64_t P,
                                               int64_t y, int64_t x, int64_t e) {
  const int64_t c = e / (P * P), dy = (e / P) % P, dx = e % P;
  return map + (c * H + y + dy) * W + x + dx;
}

template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads)
knn_fwd_kernel(const T* __restrict__ query, const T* __restrict__ key, Acc* __restrict__ dist,
               int64_t* __restrict__ idx, sr::KnnDims d, int64_t k) {
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

  Acc best_d[kKnnMaxK];
  int64_t best_i[kKnnMaxK];
  sr::topk_reset(best_d, best_i, k);
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
    for (int u = 0; u < kPerThread; ++u)
      Ds[dq][dc + u] = sr::sq_dist_from_dot(qn[dq], cn[dc + u], acc[u]);
    __syncthreads();
    if (owner) {
      for (int c = 0; c < kBN && t0 + c < ncand; ++c) {
        const int64_t a = a_lo + (t0 + c) / ncol, cb = c_lo + (t0 + c) % ncol;
        if (a < a0 || a >= a0 + d.w1 || cb < b0 || cb >= b0 + d.w2) continue;
        sr::topk_insert(best_d, best_i, k, Ds[tid][c], a * d.n2 + cb);
      }
    }
    __syncthreads();
  }

  if (!owner) return;
  const int64_t q = qi * d.m2 + qj;
  for (int s = 0; s < k; ++s) {
    const int64_t a = best_i[s] / d.n2, cb = best_i[s] % d.n2;
    Acc sum = Acc(0);
    for (int64_t e = 0; e < D; ++e) {
      const Acc diff = sr_cast<Acc>(*patch_elem(qmap, d.H, d.W, d.P, d.T * qi, d.T * qj, e)) -
                       sr_cast<Acc>(*patch_elem(kmap, d.Hk, d.Wk, d.P, d.T * a, d.T * cb, e));
      sum += diff * diff;
    }
    best_d[s] = sum;
  }
  sr::sort_topk(best_d, best_i, k);
  for (int s = 0; s < k; ++s) {
    dist[(b * d.m1 * d.m2 + q) * k + s] = best_d[s];
    idx[(b * d.m1 * d.m2 + q) * k + s] = best_i[s];
  }
}

template <typename T, typename Acc>
__global__ void knn_bwd_kernel(const Acc* __restrict__ grad, const int64_t* __restrict__ idx,
                               const T* __restrict__ query, const T* __restrict__ key,
                               Acc* grad_q, Acc* grad_k, sr::KnnDims d, int64_t k) {
  const int64_t PP = d.P * d.P, m = d.m1 * d.m2;
  const int64_t n = d.B * m * k * d.C * PP;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t dx = e % d.P, dy = (e / d.P) % d.P, c = (e / PP) % d.C, qr = e / (PP * d.C);
    const int64_t b = qr / (m * k), q = (qr / k) % m, nb = idx[qr];
    const int64_t y = d.T * (q / d.m2) + dy, x = d.T * (q % d.m2) + dx;
    const int64_t ky = d.T * (nb / d.n2) + dy, kx = d.T * (nb % d.n2) + dx;
    const int64_t qo = ((b * d.C + c) * d.H + y) * d.W + x;
    const int64_t ko = ((b * d.C + c) * d.Hk + ky) * d.Wk + kx;
    const Acc diff = Acc(2) * grad[qr] * (sr_cast<Acc>(query[qo]) - sr_cast<Acc>(key[ko]));
    atomicAdd(grad_q + qo, diff);
    atomicAdd(grad_k + ko, -diff);
  }
}

}  // namespace

Status cross_scale_knn_fwd(const void* query, const void* key, void* dist, int64_t* idx,
                           DType dtype, int64_t B, int64_t C, int64_t H, int64_t W, int64_t Hk,
                           int64_t Wk, int64_t k, int64_t P, int64_t T, int64_t window,
                           int64_t scale, cudaStream_t stream) {
  if (k > kKnnMaxK) return "k is larger than the CUDA kernel's limit of 32";
  const auto d = sr::knn_dims(B, C, H, W, Hk, Wk, P, T, scale, window);
  const int64_t blocks = B * ((d.m1 + kTI - 1) / kTI) * ((d.m2 + kTJ - 1) / kTJ);
  if (blocks == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using Tv = decltype(tag);
    using Acc = typename AccOf<Tv>::type;
    SR_LAUNCH(static_cast<unsigned>(blocks), kThreads, 0, stream, knn_fwd_kernel<Tv, Acc>)(
        static_cast<const Tv*>(query), static_cast<const Tv*>(key), static_cast<Acc*>(dist), idx,
        d, k);
  });
  return last_error();
}

Status cross_scale_knn_bwd(const void* grad_dist, const int64_t* idx, const void* query,
                           const void* key, void* grad_query, void* grad_key, DType dtype,
                           int64_t B, int64_t C, int64_t H, int64_t W, int64_t Hk, int64_t Wk,
                           int64_t k, int64_t P, int64_t T, cudaStream_t stream) {
  const auto d = sr::knn_dims(B, C, H, W, Hk, Wk, P, T, 1, -1);
  const int64_t n = B * d.m1 * d.m2 * k * C * P * P;
  if (n == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using Tv = decltype(tag);
    using Acc = typename AccOf<Tv>::type;
    SR_LAUNCH(blocks_for(n, 256), 256, 0, stream, knn_bwd_kernel<Tv, Acc>)(
        static_cast<const Acc*>(grad_dist), idx, static_cast<const Tv*>(query),
        static_cast<const Tv*>(key), static_cast<Acc*>(grad_query), static_cast<Acc*>(grad_key), d,
        k);
  });
  return last_error();
}

}  // namespace sr_cuda
