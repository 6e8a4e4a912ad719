// Kernels that check the simulator itself (python_tests/cuda_sim/test_simulator.py): what
// it must catch (a missing barrier, a bad launch, a partial warp mask) and what it must
// model (block reductions, warp shuffles and matches, poisoned dynamic shared memory).
// Written like the .cu files, against sim.h; torch-free.
#include <cstring>
#include <string>

#include "cuda/common.cuh"

namespace {

constexpr int kN = 64;

// Block sum of x[0:64] by a shared-memory tree; without the first barrier a thread reads
// partners' slots before they are written.
template <bool kBarrier>
__global__ void block_sum_kernel(const float* x, float* out) {
  __shared__ float buf[kN];
  const int t = threadIdx.x;
  buf[t] = x[t];
  if (kBarrier) __syncthreads();
  for (int s = kN / 2; s > 0; s >>= 1) {
    if (t < s) buf[t] += buf[t + s];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = buf[0];
}

// out[t] = sum over the warp (xor butterfly), out[64 + t] = match mask of x[t] as float.
__global__ void warp_kernel(const float* x, float* out) {
  const int t = threadIdx.x;
  float v = x[t];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  out[t] = v;
  out[kN + t] = float(__match_any_sync(0xffffffffu, x[t]));
}

__global__ void dynamic_shared_kernel(float* out) {
  SR_DYNAMIC_SHARED(float, smem);
  out[threadIdx.x] = smem[threadIdx.x];  // never written: the poison
}

__global__ void partial_mask_kernel(float* out) {
  if (threadIdx.x < 16) __syncwarp(0xffffu);
  out[threadIdx.x] = 1.0f;
}

}  // namespace

// Runs self-test `which` on x (64 floats) into out (128 floats); returns the CUDA error
// text ("" on success).
const char* sr_sim_selftest(const char* which, const float* x, float* out) {
  cudaGetLastError();
  const std::string w = which;
  if (w == "block_sum")
    SR_LAUNCH(2, kN, 0, nullptr, block_sum_kernel<true>)(x, out);
  else if (w == "block_sum_no_barrier")
    SR_LAUNCH(2, kN, 0, nullptr, block_sum_kernel<false>)(x, out);
  else if (w == "warp")
    SR_LAUNCH(1, kN, 0, nullptr, warp_kernel)(x, out);
  else if (w == "dynamic_shared")
    SR_LAUNCH(1, kN, kN * sizeof(float), nullptr, dynamic_shared_kernel)(out);
  else if (w == "partial_mask")
    SR_LAUNCH(1, 32, 0, nullptr, partial_mask_kernel)(out);
  else if (w == "bad_launch")
    SR_LAUNCH(1, 2048, 0, nullptr, warp_kernel)(x, out);
  else
    return "unknown self-test";
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? "" : cudaGetErrorString(e);
}
