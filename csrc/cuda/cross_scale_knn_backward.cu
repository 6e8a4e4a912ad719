// cross_scale_knn backward CUDA kernels, deterministic: no float atomics, every sum in an
// order fixed by the inputs.
//
// d dist[q, r] / d query = 2 g (Q_q - K_idx) over the patch pixels, and minus that for key.
// grad_query, output-stationary: one thread per query pixel sums the <= ceil(p/t)^2 query
// patches covering it (row, then column) and each one's k neighbours (r order).
// grad_key, output-stationary through an inverse index built by the glue (a stable sort of
// the (b, q, r) entries by key patch; csrc/cuda/inverse_index.h): one thread per key pixel
// sums the <= ceil(p/t)^2 key patches covering it and, for each, the entries that chose it
// in (q, r) order. The glue gathers each entry's gradient and query patch offset into that
// order (memory: (B * m * k) of each, and B * n + 1 offsets), so the walk reads them in
// sequence. Sums in the accumulation type, rounded once.
#include "cuda/common.cuh"
#include "cuda/cross_scale_knn_backward.cuh"
#include "cuda/gather_index.cuh"
#include "kernels/convert.h"

namespace sr_cuda {
namespace {

constexpr int kThreads = 256;

template <typename I>
struct GradDims {
  I B, C, H, W, Hk, Wk, k, P, T, m1, m2, n1, n2;
};

template <typename T, typename Acc, typename I>
__global__ void __launch_bounds__(kThreads)
    knn_grad_query_kernel(const Acc* __restrict__ grad, const I* __restrict__ kbase, const T* __restrict__ query,
                          const T* __restrict__ key, T* __restrict__ gq, GradDims<I> d) {
  const I HW = d.H * d.W, pix = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x);
  if (pix >= HW) return;
  const I y = pix / d.W, x = pix - y * d.W;
  I i0, i1, j0, j1;
  covering(y, d.P, d.T, d.m1, &i0, &i1);
  covering(x, d.P, d.T, d.m2, &j0, &j1);
  for (I plane = I(blockIdx.y); plane < d.B * d.C; plane += I(gridDim.y)) {
    const I b = plane / d.C;
    const T* kplane = key + plane * (d.Hk * d.Wk);
    const Acc qv = sr_cast<Acc>(query[plane * HW + pix]);
    Acc acc = Acc(0);
    for (I i = i0; i <= i1; ++i)
      for (I j = j0; j <= j1; ++j) {
        const I row = ((b * d.m1 + i) * d.m2 + j) * d.k;
        const T* kp = kplane + (y - d.T * i) * d.Wk + (x - d.T * j);
        for (I r = 0; r < d.k; ++r) acc += grad[row + r] * (qv - sr_cast<Acc>(kp[kbase[row + r]]));
      }
    gq[plane * HW + pix] = sr_cast<T>(Acc(2) * acc);
  }
}

template <typename T, typename Acc, typename I>
__global__ void __launch_bounds__(kThreads)
    knn_grad_key_kernel(const I* __restrict__ start, const Acc* __restrict__ sgrad, const I* __restrict__ sqbase,
                        const T* __restrict__ query, const T* __restrict__ key, T* __restrict__ gk, GradDims<I> d) {
  const I HWk = d.Hk * d.Wk, pix = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x);
  if (pix >= HWk) return;
  const I y = pix / d.Wk, x = pix - y * d.Wk;
  I a0, a1, c0, c1;
  covering(y, d.P, d.T, d.n1, &a0, &a1);
  covering(x, d.P, d.T, d.n2, &c0, &c1);
  for (I plane = I(blockIdx.y); plane < d.B * d.C; plane += I(gridDim.y)) {
    const I b = plane / d.C;
    const T* qplane = query + plane * (d.H * d.W);
    const Acc kv = sr_cast<Acc>(key[plane * HWk + pix]);
    Acc acc = Acc(0);
    for (I a = a0; a <= a1; ++a)
      for (I c = c0; c <= c1; ++c) {
        const I id = (b * d.n1 + a) * d.n2 + c;
        const T* qp = qplane + (y - d.T * a) * d.W + (x - d.T * c);
        const I s0 = start[id], s1 = start[id + 1];
        const Acc* g = sgrad + s0;
        const I* qb = sqbase + s0;
#pragma unroll 2
        for (I s = 0; s < s1 - s0; ++s) acc += g[s] * (sr_cast<Acc>(qp[qb[s]]) - kv);
      }
    gk[plane * HWk + pix] = sr_cast<T>(Acc(-2) * acc);
  }
}

template <typename T, typename Acc, typename I>
void launch(const void* grad, const void* kbase, const void* start, const void* sgrad, const void* sqbase,
            const void* query, const void* key, void* gq, void* gk, const KnnGradShape& s, cudaStream_t stream) {
  GradDims<I> d;
  d.B = I(s.B), d.C = I(s.C), d.H = I(s.H), d.W = I(s.W), d.Hk = I(s.Hk), d.Wk = I(s.Wk), d.k = I(s.k);
  d.P = I(s.P), d.T = I(s.T);
  d.m1 = (d.H - d.P) / d.T + 1, d.m2 = (d.W - d.P) / d.T + 1;
  d.n1 = (d.Hk - d.P) / d.T + 1, d.n2 = (d.Wk - d.P) / d.T + 1;
  const auto* q = static_cast<const T*>(query);
  const auto* kmap = static_cast<const T*>(key);
  SR_LAUNCH(plane_grid(s.H * s.W, s.B * s.C, kThreads), kThreads, 0, stream, knn_grad_query_kernel<T, Acc, I>)(
      static_cast<const Acc*>(grad), static_cast<const I*>(kbase), q, kmap, static_cast<T*>(gq), d);
  SR_LAUNCH(plane_grid(s.Hk * s.Wk, s.B * s.C, kThreads), kThreads, 0, stream, knn_grad_key_kernel<T, Acc, I>)(
      static_cast<const I*>(start), static_cast<const Acc*>(sgrad), static_cast<const I*>(sqbase), q, kmap,
      static_cast<T*>(gk), d);
}

}  // namespace

Status cross_scale_knn_grad(const void* grad, const void* kbase, const void* start, const void* sorted_grad,
                            const void* sorted_qbase, const void* query, const void* key, void* grad_query,
                            void* grad_key, DType dtype, bool wide, KnnGradShape s, cudaStream_t stream) {
  if (s.B * s.C == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using Tv = decltype(tag);
    using Acc = typename AccOf<Tv>::type;
    if (wide)
      launch<Tv, Acc, int64_t>(grad, kbase, start, sorted_grad, sorted_qbase, query, key, grad_query, grad_key, s,
                               stream);
    else
      launch<Tv, Acc, int32_t>(grad, kbase, start, sorted_grad, sorted_qbase, query, key, grad_query, grad_key, s,
                               stream);
  });
  return last_error();
}

}  // namespace sr_cuda
