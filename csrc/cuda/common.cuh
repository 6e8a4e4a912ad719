// CUDA-side helpers shared by the .cu files (torch-free).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cuda/launch.h"
#include "kernels/convert.h"

// Every kernel launch goes through SR_LAUNCH(grid, block, shared_bytes, stream, kernel)(args):
// `<<<>>>` under nvcc; under the CPU simulator (csrc/testing/cuda_sim, SR_CUDA_SIM) a call
// that runs the grid's blocks in turn on host threads. The kernel comes last because a
// template-id such as `k<T, Acc>` holds commas.
#if defined(SR_CUDA_SIM)
#define SR_LAUNCH(grid, block, smem, stream, ...) \
  ::sr_sim::Launch((grid), (block), (smem), (stream), #__VA_ARGS__, &__VA_ARGS__)
#define SR_DYNAMIC_SHARED(T, name) T* name = static_cast<T*>(::sr_sim::dynamic_shared())
#else
#define SR_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
// The launch's dynamic shared memory (its third launch argument) as a T array.
#define SR_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

namespace sr_cuda {

template <typename T>
struct AccOf {
  using type = float;
};
template <>
struct AccOf<double> {
  using type = double;
};

// Calls f(T{}) with T the C++ type for `dtype`.
template <typename F>
void with_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat32: f(float{}); break;
    case DType::kFloat64: f(double{}); break;
    case DType::kFloat16: f(__half{}); break;
    case DType::kBFloat16: f(__nv_bfloat16{}); break;
  }
}

inline unsigned blocks_for(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  // Grid-stride loops cover the rest; cap keeps the launch legal for huge n.
  return static_cast<unsigned>(b < 65535 * 32 ? (b > 0 ? b : 1) : 65535 * 32);
}

// ---- 128-bit global memory access (float4 / double2 / 8 halves per 16 bytes) ----

// Elements of T per 16-byte access.
template <typename T>
constexpr int kPack = int(16 / sizeof(T));

// Bytes of one element of a float dtype.
inline int64_t elem_size(DType dtype) { return dtype == DType::kFloat64 ? 8 : dtype == DType::kFloat32 ? 4 : 2; }

// Values per thread step: a 16-byte pack of the dtype when every contiguous row of `len`
// values starts 16-byte aligned (`aligned`: the base pointers are), else 1 (scalar kernel).
inline int vec_width(DType dtype, int64_t len, bool aligned) {
  const int64_t n = 16 / elem_size(dtype);
  return aligned && len % n == 0 ? int(n) : 1;
}

// Calls f(N) with the vector width n (kPack<T> or 1) as a compile-time constant.
template <typename T, typename F>
void with_width(int n, F&& f) {
  if (n == kPack<T>)
    f(std::integral_constant<int, kPack<T>>{});
  else
    f(std::integral_constant<int, 1>{});
}

// Whether every pointer is 16-byte aligned: the launchers take a vector kernel only then
// (and only when each contiguous row's length is a multiple of the pack, so every row starts
// aligned too); a view at an odd storage offset runs the scalar kernel.
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
template <typename... P>
bool all_aligned16(const P*... p) {
  return (aligned16(p) && ...);
}

// Loads N consecutive T from p as accumulator values: one 128-bit load per 16 bytes when N > 1
// (p then 16-byte aligned), a plain load when N == 1. kNc: through the read-only (non-coherent)
// cache, for data the kernel never writes; false for data it wrote itself.
template <int N, bool kNc = true, typename T, typename Acc>
__device__ __forceinline__ void load_vec(const T* __restrict__ p, Acc (&v)[N]) {
  if constexpr (N == 1) {
    v[0] = sr_cast<Acc>(p[0]);
  } else {
    static_assert(N * sizeof(T) % 16 == 0, "load_vec: whole 16-byte words only");
#pragma unroll
    for (int q = 0; q < N * int(sizeof(T)) / 16; ++q) {
      T t[kPack<T>];
#if defined(SR_CUDA_SIM)
      std::memcpy(t, p + q * kPack<T>, 16);
#else
      if constexpr (std::is_same_v<T, float>) {
        const float4* a = reinterpret_cast<const float4*>(p) + q;
        const float4 u = kNc ? __ldg(a) : *a;
        t[0] = u.x, t[1] = u.y, t[2] = u.z, t[3] = u.w;
      } else if constexpr (std::is_same_v<T, double>) {
        const double2* a = reinterpret_cast<const double2*>(p) + q;
        const double2 u = kNc ? __ldg(a) : *a;
        t[0] = u.x, t[1] = u.y;
      } else {
        const uint4* a = reinterpret_cast<const uint4*>(p) + q;
        const uint4 u = kNc ? __ldg(a) : *a;
        std::memcpy(t, &u, 16);
      }
#endif
#pragma unroll
      for (int j = 0; j < kPack<T>; ++j) v[q * kPack<T> + j] = sr_cast<Acc>(t[j]);
    }
  }
}

// Stores N accumulator values to p as T, 128 bits at a time when N > 1 (p 16-byte aligned).
template <int N, typename T, typename Acc>
__device__ __forceinline__ void store_vec(T* __restrict__ p, const Acc (&v)[N]) {
  if constexpr (N == 1) {
    p[0] = sr_cast<T>(v[0]);
  } else {
    static_assert(N * sizeof(T) % 16 == 0, "store_vec: whole 16-byte words only");
#pragma unroll
    for (int q = 0; q < N * int(sizeof(T)) / 16; ++q) {
      T t[kPack<T>];
#pragma unroll
      for (int j = 0; j < kPack<T>; ++j) t[j] = sr_cast<T>(v[q * kPack<T> + j]);
#if defined(SR_CUDA_SIM)
      std::memcpy(p + q * kPack<T>, t, 16);
#else
      if constexpr (std::is_same_v<T, float>) {
        reinterpret_cast<float4*>(p)[q] = make_float4(t[0], t[1], t[2], t[3]);
      } else if constexpr (std::is_same_v<T, double>) {
        reinterpret_cast<double2*>(p)[q] = make_double2(t[0], t[1]);
      } else {
        uint4 u;
        std::memcpy(&u, t, 16);
        reinterpret_cast<uint4*>(p)[q] = u;
      }
#endif
    }
  }
}

// ---- index types ----

// Kernels index in I = int32_t unless a tensor they touch holds 2^31 or more elements; the
// launchers pick with with_index. Grid-stride counters run in I's unsigned type, so
// i + stride (< 2 * 2^31) cannot wrap.
template <typename F>
void with_index(int64_t largest, F&& f) {
  if (largest < (int64_t(1) << 31))
    f(int32_t{});
  else
    f(int64_t{});
}

template <typename I>
using UIdx = std::make_unsigned_t<I>;

// This thread's first position and the stride of a grid-stride loop along x, in I's unsigned type.
template <typename I>
__device__ __forceinline__ UIdx<I> grid_start() {
  return UIdx<I>(blockIdx.x) * UIdx<I>(blockDim.x) + UIdx<I>(threadIdx.x);
}
template <typename I>
__device__ __forceinline__ UIdx<I> grid_step() {
  return UIdx<I>(gridDim.x) * UIdx<I>(blockDim.x);
}

// Blocks that keep every SM of the largest current GPU (H100: 132 SMs, up to 8 blocks of 256
// threads resident) busy for two waves; the reductions split their sums into at least this
// many per-block partials.
constexpr int64_t kTwoWaveBlocks = 2 * 132 * 8;

inline Status last_error() {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? "" : cudaGetErrorString(e);
}

}  // namespace sr_cuda
