// adapn CUDA kernels: one warp per (n, c) group (a query patch and its k neighbour
// patches). A patch is only PP = 36 values in IGNN, too few to split across blocks
// and too many for one thread to walk without stalling on memory; a warp reads each
// patch in coalesced runs and reduces its sums with shuffles, no shared memory.
// The per-element formulas come from csrc/kernels/adapn.h, shared with the CPU.
#include "cuda/adapn.cuh"
#include "cuda/common.cuh"
#include "kernels/convert.h"
#include "kernels/adapn.h"

namespace sr_cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kThreads = 256;

// Every lane gets the total (xor butterfly), so later branches stay warp-uniform.
template <typename Acc>
__device__ Acc warp_sum(Acc v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The warp's version of sr::patch_moments: the same two passes about the first value,
// lane-strided.
template <typename T, typename Acc>
__device__ sr::Moments<Acc> warp_moments(const T* x, int64_t n, int lane) {
  sr::Moments<Acc> m;
  m.shift = sr_cast<Acc>(x[0]);
  Acc s = Acc(0);
  for (int64_t e = lane; e < n; e += kWarp) s += sr_cast<Acc>(x[e]) - m.shift;
  m.dmean = warp_sum(s) / Acc(n);
  Acc ss = Acc(0);
  for (int64_t e = lane; e < n; e += kWarp) {
    const Acc dev = sr::centred(m, sr_cast<Acc>(x[e]));
    ss += dev * dev;
  }
  m.var = warp_sum(ss) / Acc(n - 1);
  return m;
}

// This thread's lane, its warp's first group and the group stride. The loop over
// groups is warp-uniform, so all 32 lanes reach every shuffle together.
struct WarpGroups {
  int lane;
  int64_t first, step;
};

__device__ WarpGroups warp_groups() {
  return {int(threadIdx.x % kWarp), (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / kWarp,
          int64_t(gridDim.x) * blockDim.x / kWarp};
}

template <typename T>
__global__ void fwd_kernel(const T* __restrict__ z, const T* __restrict__ q, T* __restrict__ out, sr::AdapnDims d,
                           double eps) {
  using Acc = typename AccOf<T>::type;
  const auto w = warp_groups();
  const int lane = w.lane;
  for (int64_t g = w.first; g < sr::adapn_groups(d); g += w.step) {
    const auto qm = warp_moments<T, Acc>(q + sr::adapn_query_offset(d, g), d.pp, lane);
    for (int64_t r = 0; r < d.k; ++r) {
      const int64_t off = sr::adapn_neighbor_offset(d, g, r);
      const auto c = sr::adapn_coef(warp_moments<T, Acc>(z + off, d.PP, lane), qm, Acc(eps));
      for (int64_t e = lane; e < d.PP; e += kWarp)
        out[off + e] = sr_cast<T>(sr::adapn_value(c, sr_cast<Acc>(z[off + e])));
    }
  }
}

template <typename T>
__global__ void bwd_kernel(const T* __restrict__ grad, const T* __restrict__ z, const T* __restrict__ q,
                           T* __restrict__ gz, T* __restrict__ gq, sr::AdapnDims d, double eps) {
  using Acc = typename AccOf<T>::type;
  const auto w = warp_groups();
  const int lane = w.lane;
  for (int64_t g = w.first; g < sr::adapn_groups(d); g += w.step) {
    const int64_t qoff = sr::adapn_query_offset(d, g);
    const auto qm = warp_moments<T, Acc>(q + qoff, d.pp, lane);
    Acc G1 = Acc(0), G2 = Acc(0);
    for (int64_t r = 0; r < d.k; ++r) {
      const int64_t off = sr::adapn_neighbor_offset(d, g, r);
      const auto c = sr::adapn_coef(warp_moments<T, Acc>(z + off, d.PP, lane), qm, Acc(eps));
      Acc sg = Acc(0), sgx = Acc(0);
      for (int64_t e = lane; e < d.PP; e += kWarp) {
        const Acc ge = sr_cast<Acc>(grad[off + e]);
        sg += ge;
        sgx += ge * sr::adapn_xhat(c, sr_cast<Acc>(z[off + e]));
      }
      sg = warp_sum(sg);
      sgx = warp_sum(sgx);
      for (int64_t e = lane; e < d.PP; e += kWarp)
        gz[off + e] =
            sr_cast<T>(sr::adapn_grad_z(c, sr_cast<Acc>(grad[off + e]), sr_cast<Acc>(z[off + e]), sg, sgx, d.PP));
      G1 += sg;
      G2 += sgx;
    }
    const Acc std_q = sr::adapn_sqrt(qm.var + Acc(eps));
    for (int64_t e = lane; e < d.pp; e += kWarp)
      gq[qoff + e] = sr_cast<T>(sr::adapn_grad_q(qm, std_q, sr_cast<Acc>(q[qoff + e]), G1, G2, d.pp));
  }
}

sr::AdapnDims make_dims(int64_t N, int64_t k, int64_t C, int64_t PP, int64_t pp) {
  sr::AdapnDims d;
  d.N = N;
  d.k = k;
  d.C = C;
  d.PP = PP;
  d.pp = pp;
  return d;
}

}  // namespace

Status adapn_fwd(const void* neighbors, const void* query, void* out, DType dtype, int64_t N, int64_t k, int64_t C,
                 int64_t PP, int64_t pp, double eps, cudaStream_t stream) {
  const auto d = make_dims(N, k, C, PP, pp);
  const int64_t threads = sr::adapn_groups(d) * kWarp;
  if (threads == 0 || k == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    SR_LAUNCH(blocks_for(threads, kThreads), kThreads, 0, stream, fwd_kernel<T>)(
        static_cast<const T*>(neighbors), static_cast<const T*>(query), static_cast<T*>(out), d, eps);
  });
  return last_error();
}

Status adapn_bwd(const void* grad_out, const void* neighbors, const void* query, void* grad_neighbors, void* grad_query,
                 DType dtype, int64_t N, int64_t k, int64_t C, int64_t PP, int64_t pp, double eps,
                 cudaStream_t stream) {
  const auto d = make_dims(N, k, C, PP, pp);
  const int64_t threads = sr::adapn_groups(d) * kWarp;
  if (threads == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    SR_LAUNCH(blocks_for(threads, kThreads), kThreads, 0, stream, bwd_kernel<T>)(
        static_cast<const T*>(grad_out), static_cast<const T*>(neighbors), static_cast<const T*>(query),
        static_cast<T*>(grad_neighbors), static_cast<T*>(grad_query), d, eps);
  });
  return last_error();
}

}  // namespace sr_cuda
