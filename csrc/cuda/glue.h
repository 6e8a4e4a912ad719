// Helpers for the *_glue.cpp files: tensor -> raw launcher arguments.
//
// Under SR_CUDA_SIM (the CPU simulator of csrc/testing/cuda_sim) the same glue registers
// for CPU tensors in the `sr_ops_cudasim` library instead, so tests call the very glue and
// kernels a GPU runs, side by side with the CPU kernels in `sr_ops`.
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include "check.h"
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
inline cudaStream_t stream_of(const at::Tensor&) { return nullptr; }
#else
using DeviceGuard = c10::cuda::CUDAGuard;
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
    default:
      TORCH_CHECK_TYPE(false, "the CUDA kernels take float32, float64, float16 or bfloat16, got ",
                       sr_check::dtype_name(t.scalar_type()));
  }
}

// The device the glue's kernels run on: CUDA (CPU under the simulator).
inline void check_device(const at::Tensor& t, const char* name) {
#if defined(SR_CUDA_SIM)
  TORCH_CHECK_VALUE(t.is_cpu(), name, " must be a CPU tensor (the CUDA simulator), got ", t.device());
#else
  TORCH_CHECK_VALUE(t.is_cuda(), name, " must be a CUDA tensor, got ", t.device());
#endif
}

// check_device on `like`, and every other tensor of one call on its device with its dtype.
inline void check_inputs(const at::Tensor& like, const char* like_name,
                         std::initializer_list<std::pair<const at::Tensor*, const char*>> others = {}) {
  check_device(like, like_name);
  sr_check::same_dtype_device(like, like_name, others);
}

inline void check_status(Status s, const char* what) {
  TORCH_CHECK(s == nullptr || s[0] == '\0', what, " failed: ", s);
}

}  // namespace sr_cuda
