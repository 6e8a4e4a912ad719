// CUDA-side helpers shared by the .cu files (torch-free).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda/launch.h"

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

inline Status last_error() {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? "" : cudaGetErrorString(e);
}

}  // namespace sr_cuda
