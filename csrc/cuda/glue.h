// Helpers for the *_glue.cpp files: tensor -> raw launcher arguments.
//
// Under SR_CUDA_SIM (the CPU simulator of csrc/testing/cuda_sim) the same glue registers
// for CPU tensors in the `sr_ops_cudasim` library instead, so tests call the very glue and
// kernels a GPU runs, side by side with the CPU kernels in `sr_ops`.
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include "cuda/launch.h"

#if defined(SR_CUDA_SIM)
#define SR_CUDA_LIBRARY_IMPL(m) TORCH_LIBRARY_IMPL(sr_ops_cudasim, CPU, m)
#else
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#define SR_CUDA_LIBRARY_IMPL(m) TORCH_LIBRARY_IMPL(sr_ops, CUDA, m)
#endif

namespace sr_cuda {

#if defined(SR_CUDA_SIM)
struct DeviceGuard {
  explicit DeviceGuard(const c10::Device&) {}
};
inline bool is_kernel_device(const at::Tensor& t) { return t.is_cpu(); }
inline cudaStream_t stream_of(const at::Tensor&) { return nullptr; }
#else
using DeviceGuard = c10::cuda::CUDAGuard;
inline bool is_kernel_device(const at::Tensor& t) { return t.is_cuda(); }
inline cudaStream_t stream_of(const at::Tensor& t) {
  return c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
}
#endif

inline DType dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return DType::kFloat32;
    case at::kDouble: return DType::kFloat64;
    case at::kHalf: return DType::kFloat16;
    case at::kBFloat16: return DType::kBFloat16;
    default: TORCH_CHECK(false, "unsupported dtype ", t.scalar_type());
  }
}

// Every tensor of a call on its first input's device: one on another GPU (another device
// index) would be read through the wrong context.
inline void check_same_device(const at::Tensor& t, const char* name, const at::Tensor& like,
                              const char* like_name) {
  TORCH_CHECK(t.device() == like.device(), name, " is on ", t.device(), " but ", like_name,
              " is on ", like.device());
}

// Index values the kernels use as offsets (gathers, atomics): one outside [0, n) would read
// or write out of bounds, so it is an error, as on the CPU. Costs one small reduction.
inline void check_index_range(const at::Tensor& idx, int64_t n, const char* name) {
  if (idx.numel() == 0) return;
  const auto [lo, hi] = at::aminmax(idx);
  const int64_t l = lo.item<int64_t>(), h = hi.item<int64_t>();
  TORCH_CHECK(l >= 0 && h < n, name, " values must lie in [0, ", n, "), got [", l, ", ", h, "]");
}

inline void check_status(Status s, const char* what) {
  TORCH_CHECK(s == nullptr || s[0] == '\0', what, " failed: ", s);
}

}  // namespace sr_cuda
