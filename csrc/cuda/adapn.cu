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
// lane-strided, N values (one 128-bit load when N > 1) a lane step.
template <int N, typename T, typename Acc, typename I>
__device__ sr::Moments<Acc> warp_moments(const T* x, I n, int lane) {
  sr::Moments<Acc> m;
  m.shift = sr_cast<Acc>(x[0]);
  Acc s = Acc(0);
  for (I e = I(lane) * N; e < n; e += kWarp * N) {
    Acc v[N];
    load_vec<N>(x + e, v);
#pragma unroll
    for (int j = 0; j < N; ++j) s += v[j] - m.shift;
  }
  m.dmean = warp_sum(s) / Acc(n);
  Acc ss = Acc(0);
  for (I e = I(lane) * N; e < n; e += kWarp * N) {
    Acc v[N];
    load_vec<N>(x + e, v);
#pragma unroll
    for (int j = 0; j < N; ++j) {
      const Acc dev = sr::centred(m, v[j]);
      ss += dev * dev;
    }
  }
  m.var = warp_sum(ss) / Acc(n - 1);
  return m;
}

// A warp per group g = (n, c), the loop warp-uniform so all 32 lanes reach every shuffle
// together. Offsets as sr::adapn_neighbor_offset / adapn_query_offset, in I: the neighbour
// patches of group (n, c) start at ((n * k + r) * C + c) * PP.
template <typename I>
struct Group {
  I g, first;  // first: offset of neighbour patch 0; patch r + 1 is C * PP further on
};

template <typename I>
__device__ __forceinline__ Group<I> group_of(I g, I k, I C, I PP) {
  const I n = g / C;
  return {g, ((n * k) * C + (g - n * C)) * PP};
}

// NZ / NQ: values per lane step in the neighbour / query patches (a 16-byte pack when the
// patch length is a multiple of it and the tensors are aligned, else 1).
template <typename T, typename I, int NZ, int NQ>
__global__ void fwd_kernel(const T* __restrict__ z, const T* __restrict__ q, T* __restrict__ out, I groups, I k, I C,
                           I PP, I pp, double eps) {
  using Acc = typename AccOf<T>::type;
  const int lane = int(threadIdx.x % kWarp);
  const UIdx<I> step = grid_step<I>() / kWarp;
  for (UIdx<I> u = grid_start<I>() / kWarp; u < UIdx<I>(groups); u += step) {
    const auto grp = group_of<I>(I(u), k, C, PP);
    const auto qm = warp_moments<NQ, T, Acc>(q + grp.g * pp, pp, lane);
    for (I r = 0; r < k; ++r) {
      const I off = grp.first + r * C * PP;
      const auto c = sr::adapn_coef(warp_moments<NZ, T, Acc>(z + off, PP, lane), qm, Acc(eps));
      for (I e = I(lane) * NZ; e < PP; e += kWarp * NZ) {
        Acc v[NZ];
        load_vec<NZ>(z + off + e, v);
#pragma unroll
        for (int j = 0; j < NZ; ++j) v[j] = sr::adapn_value(c, v[j]);
        store_vec<NZ>(out + off + e, v);
      }
    }
  }
}

template <typename T, typename I, int NZ, int NQ>
__global__ void bwd_kernel(const T* __restrict__ grad, const T* __restrict__ z, const T* __restrict__ q,
                           T* __restrict__ gz, T* __restrict__ gq, I groups, I k, I C, I PP, I pp, double eps) {
  using Acc = typename AccOf<T>::type;
  const int lane = int(threadIdx.x % kWarp);
  const UIdx<I> step = grid_step<I>() / kWarp;
  for (UIdx<I> u = grid_start<I>() / kWarp; u < UIdx<I>(groups); u += step) {
    const auto grp = group_of<I>(I(u), k, C, PP);
    const I qoff = grp.g * pp;
    const auto qm = warp_moments<NQ, T, Acc>(q + qoff, pp, lane);
    Acc G1 = Acc(0), G2 = Acc(0);
    for (I r = 0; r < k; ++r) {
      const I off = grp.first + r * C * PP;
      const auto c = sr::adapn_coef(warp_moments<NZ, T, Acc>(z + off, PP, lane), qm, Acc(eps));
      Acc sg = Acc(0), sgx = Acc(0);
      for (I e = I(lane) * NZ; e < PP; e += kWarp * NZ) {
        Acc gv[NZ], zv[NZ];
        load_vec<NZ>(grad + off + e, gv);
        load_vec<NZ>(z + off + e, zv);
#pragma unroll
        for (int j = 0; j < NZ; ++j) {
          sg += gv[j];
          sgx += gv[j] * sr::adapn_xhat(c, zv[j]);
        }
      }
      sg = warp_sum(sg);
      sgx = warp_sum(sgx);
      for (I e = I(lane) * NZ; e < PP; e += kWarp * NZ) {
        Acc gv[NZ], zv[NZ];
        load_vec<NZ>(grad + off + e, gv);
        load_vec<NZ>(z + off + e, zv);
#pragma unroll
        for (int j = 0; j < NZ; ++j) zv[j] = sr::adapn_grad_z(c, gv[j], zv[j], sg, sgx, PP);
        store_vec<NZ>(gz + off + e, zv);
      }
      G1 += sg;
      G2 += sgx;
    }
    const Acc std_q = sr::adapn_sqrt(qm.var + Acc(eps));
    for (I e = I(lane) * NQ; e < pp; e += kWarp * NQ) {
      Acc v[NQ];
      load_vec<NQ>(q + qoff + e, v);
#pragma unroll
      for (int j = 0; j < NQ; ++j) v[j] = sr::adapn_grad_q(qm, std_q, v[j], G1, G2, pp);
      store_vec<NQ>(gq + qoff + e, v);
    }
  }
}

// Calls f(NZ, NQ) with the vector widths as compile-time constants.
template <typename T, typename F>
void with_widths(bool vz, bool vq, F&& f) {
  constexpr int P = kPack<T>;
  if (vz && vq)
    f(std::integral_constant<int, P>{}, std::integral_constant<int, P>{});
  else if (vz)
    f(std::integral_constant<int, P>{}, std::integral_constant<int, 1>{});
  else if (vq)
    f(std::integral_constant<int, 1>{}, std::integral_constant<int, P>{});
  else
    f(std::integral_constant<int, 1>{}, std::integral_constant<int, 1>{});
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
  const int64_t groups = sr::adapn_groups(d), threads = groups * kWarp;
  if (threads == 0 || k == 0) return "";
  const int64_t pack = 16 / elem_size(dtype);
  const bool vz = PP % pack == 0 && all_aligned16(neighbors, out), vq = pp % pack == 0 && aligned16(query);
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    with_widths<T>(vz, vq, [&](auto nz, auto nq) {
      constexpr int NZ = decltype(nz)::value, NQ = decltype(nq)::value;
      with_index(N * k * C * PP, [&](auto itag) {
        using I = decltype(itag);
        SR_LAUNCH(blocks_for(threads, kThreads), kThreads, 0, stream, fwd_kernel<T, I, NZ, NQ>)(
            static_cast<const T*>(neighbors), static_cast<const T*>(query), static_cast<T*>(out), I(groups), I(k), I(C),
            I(PP), I(pp), eps);
      });
    });
  });
  return last_error();
}

Status adapn_bwd(const void* grad_out, const void* neighbors, const void* query, void* grad_neighbors, void* grad_query,
                 DType dtype, int64_t N, int64_t k, int64_t C, int64_t PP, int64_t pp, double eps,
                 cudaStream_t stream) {
  const auto d = make_dims(N, k, C, PP, pp);
  const int64_t groups = sr::adapn_groups(d), threads = groups * kWarp;
  if (threads == 0) return "";
  const int64_t pack = 16 / elem_size(dtype);
  const bool vz = PP % pack == 0 && all_aligned16(grad_out, neighbors, grad_neighbors);
  const bool vq = pp % pack == 0 && all_aligned16(query, grad_query);
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    with_widths<T>(vz, vq, [&](auto nz, auto nq) {
      constexpr int NZ = decltype(nz)::value, NQ = decltype(nq)::value;
      with_index(sr::imax(N * k * C * PP, N * C * pp), [&](auto itag) {
        using I = decltype(itag);
        SR_LAUNCH(blocks_for(threads, kThreads), kThreads, 0, stream, bwd_kernel<T, I, NZ, NQ>)(
            static_cast<const T*>(grad_out), static_cast<const T*>(neighbors), static_cast<const T*>(query),
            static_cast<T*>(grad_neighbors), static_cast<T*>(grad_query), I(groups), I(k), I(C), I(PP), I(pp), eps);
      });
    });
  });
  return last_error();
}

}  // namespace sr_cuda
