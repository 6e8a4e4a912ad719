// sr_cast<To>(v): every element <-> accumulator conversion in the kernels.
//
// torch's CUDAExtension compiles .cu files with -D__CUDA_NO_HALF_OPERATORS__,
// -D__CUDA_NO_HALF_CONVERSIONS__, -D__CUDA_NO_BFLOAT16_CONVERSIONS__ and
// -D__CUDA_NO_HALF2_OPERATORS__, which remove __half's and __nv_bfloat16's implicit
// conversions and operators, so `Acc(x[i])` or `T(v)` do not compile for them. The
// kernels convert through sr_cast instead: a static_cast for the ordinary types (float,
// double, at::Half / at::BFloat16 in the CPU kernels), and for __half / __nv_bfloat16
// only __half2float, __float2half_rn, __bfloat162float and __float2bfloat16_rn, the four
// functions the CPU simulator (SR_CUDA_SIM) provides for its stand-in types. Half values
// are never computed with directly: kernels load them to float, work there, store back.
#pragma once

#include "kernels/common.h"

#if defined(__CUDACC__) || defined(SR_CUDA_SIM)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define SR_HAS_CUDA_HALF 1
#endif

namespace sr {

template <typename To, typename From>
struct Cast {
  static SR_HOST_DEVICE To apply(From v) { return static_cast<To>(v); }
};

#if defined(SR_HAS_CUDA_HALF)
// Into a half type from any arithmetic type, through float. (A double would round
// twice; half tensors accumulate in float, so no kernel converts double to half.)
template <typename From>
struct Cast<__half, From> {
  static SR_HOST_DEVICE __half apply(From v) { return __float2half_rn(static_cast<float>(v)); }
};
template <typename From>
struct Cast<__nv_bfloat16, From> {
  static SR_HOST_DEVICE __nv_bfloat16 apply(From v) { return __float2bfloat16_rn(static_cast<float>(v)); }
};
// Out of a half type into any arithmetic type, through float (exact).
template <typename To>
struct Cast<To, __half> {
  static SR_HOST_DEVICE To apply(__half v) { return static_cast<To>(__half2float(v)); }
};
template <typename To>
struct Cast<To, __nv_bfloat16> {
  static SR_HOST_DEVICE To apply(__nv_bfloat16 v) { return static_cast<To>(__bfloat162float(v)); }
};
// Half to half (both partial specialisations above would match).
template <>
struct Cast<__half, __half> {
  static SR_HOST_DEVICE __half apply(__half v) { return v; }
};
template <>
struct Cast<__nv_bfloat16, __nv_bfloat16> {
  static SR_HOST_DEVICE __nv_bfloat16 apply(__nv_bfloat16 v) { return v; }
};
template <>
struct Cast<__half, __nv_bfloat16> {
  static SR_HOST_DEVICE __half apply(__nv_bfloat16 v) { return __float2half_rn(__bfloat162float(v)); }
};
template <>
struct Cast<__nv_bfloat16, __half> {
  static SR_HOST_DEVICE __nv_bfloat16 apply(__half v) { return __float2bfloat16_rn(__half2float(v)); }
};
#endif

}  // namespace sr

// Global, so the kernels/*.h (namespace sr) and the .cu files (sr_cuda) call it alike.
template <typename To, typename From>
SR_HOST_DEVICE To sr_cast(From v) {
  return sr::Cast<To, From>::apply(v);
}
