// layernorm2d CUDA kernels. Forward and dL/dx: a thread per pixel walking its C channel
// values HW apart, so a warp's 32 loads of one channel are 32 neighbouring pixels, one
// coalesced run. The weight and bias gradients: a block per channel reducing over all
// B * HW pixels from the per-pixel statistics the first kernel saved (no atomics,
// deterministic). The per-element formulas come from csrc/kernels/layernorm2d.h.
#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/layernorm2d.cuh"
#include "kernels/convert.h"
#include "kernels/gelu.h"
#include "kernels/layernorm2d.h"

namespace sr_cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void fwd_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b, T* __restrict__ y,
                           int64_t B, int64_t C, int64_t HW, double eps) {
  using Acc = typename AccOf<T>::type;
  const int64_t n = B * HW;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = i / HW * C * HW + i % HW;
    sr::ln2d_pixel_fwd<T, Acc>(x + base, w, b, y + base, C, HW, Acc(eps));
  }
}

// gelu_layernorm2d: the thread writes its pixel's GELU values to y, then normalises them
// there in place (ln2d_pixel_fwd reads each value before it writes it). float16 / bfloat16
// would round GELU(x) there: they recompute it in float instead, rounding once (issue 31).
template <typename T>
__global__ void gelu_fwd_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                T* __restrict__ y, int64_t B, int64_t C, int64_t HW, double eps, bool tanh_approx) {
  using Acc = typename AccOf<T>::type;
  const int64_t n = B * HW;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = i / HW * C * HW + i % HW;
    if constexpr (std::is_same_v<T, Acc>) {
      for (int64_t c = 0; c < C; ++c)
        y[base + c * HW] = sr_cast<T>(sr::gelu<Acc>(sr_cast<Acc>(x[base + c * HW]), tanh_approx));
      sr::ln2d_pixel_fwd<T, Acc>(y + base, w, b, y + base, C, HW, Acc(eps));
    } else {
      sr::ln2d_pixel_gelu_fwd<T, Acc>(x + base, w, b, y + base, C, HW, Acc(eps), tanh_approx);
    }
  }
}

template <typename T>
__global__ void bwd_x_kernel(const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ w,
                             T* __restrict__ gx, typename AccOf<T>::type* __restrict__ stats, int64_t B, int64_t C,
                             int64_t HW, double eps) {
  using Acc = typename AccOf<T>::type;
  const int64_t n = B * HW;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = i / HW * C * HW + i % HW;
    Acc dm, rstd;
    sr::ln2d_pixel_bwd<T, Acc>(g + base, x + base, w, gx + base, C, HW, Acc(eps), &dm, &rstd);
    stats[i] = dm;
    stats[n + i] = rstd;
  }
}

template <typename T>
__global__ void bwd_w_kernel(const T* __restrict__ g, const T* __restrict__ x,
                             const typename AccOf<T>::type* __restrict__ stats, T* __restrict__ gw, T* __restrict__ gb,
                             int64_t B, int64_t C, int64_t HW) {
  using Acc = typename AccOf<T>::type;
  __shared__ Acc sw[kThreads], sb[kThreads];
  const int64_t n = B * HW;
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    Acc aw = Acc(0), ab = Acc(0);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const int64_t e0 = i / HW * C * HW + i % HW, e = e0 + c * HW;
      const Acc gv = sr_cast<Acc>(g[e]);
      // The pixel's shift is its channel-0 value (ln2d_pixel_stats), re-read (L2-resident
      // across the channel blocks) as the workspace holds only dm and rstd.
      aw += gv * sr::ln2d_dev(sr_cast<Acc>(x[e]), sr_cast<Acc>(x[e0]), stats[i]) * stats[n + i];
      ab += gv;
    }
    sw[threadIdx.x] = aw;
    sb[threadIdx.x] = ab;
    __syncthreads();
    for (int s = kThreads / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s) {
        sw[threadIdx.x] += sw[threadIdx.x + s];
        sb[threadIdx.x] += sb[threadIdx.x + s];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      gw[c] = sr_cast<T>(sw[0]);
      gb[c] = sr_cast<T>(sb[0]);
    }
    __syncthreads();
  }
}

}  // namespace

Status layernorm2d_fwd(const void* x, const void* weight, const void* bias, void* y, DType dtype, int64_t B, int64_t C,
                       int64_t HW, double eps, cudaStream_t stream) {
  if (B * C * HW == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    SR_LAUNCH(blocks_for(B * HW, kThreads), kThreads, 0, stream, fwd_kernel<T>)(
        static_cast<const T*>(x), static_cast<const T*>(weight), static_cast<const T*>(bias), static_cast<T*>(y), B, C,
        HW, eps);
  });
  return last_error();
}

Status gelu_layernorm2d_fwd(const void* x, const void* weight, const void* bias, void* y, DType dtype, int64_t B,
                            int64_t C, int64_t HW, double eps, bool tanh_approx, cudaStream_t stream) {
  if (B * C * HW == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    SR_LAUNCH(blocks_for(B * HW, kThreads), kThreads, 0, stream, gelu_fwd_kernel<T>)(
        static_cast<const T*>(x), static_cast<const T*>(weight), static_cast<const T*>(bias), static_cast<T*>(y), B, C,
        HW, eps, tanh_approx);
  });
  return last_error();
}

Status layernorm2d_bwd(const void* grad_out, const void* x, const void* weight, void* grad_x, void* grad_weight,
                       void* grad_bias, void* workspace, DType dtype, int64_t B, int64_t C, int64_t HW, double eps,
                       cudaStream_t stream) {
  if (C == 0) return "";
  if (B * HW == 0) {  // no pixels: zero weight and bias gradients
    const size_t bytes = size_t(C) * (dtype == DType::kFloat64 ? 8 : dtype == DType::kFloat32 ? 4 : 2);
    cudaMemsetAsync(grad_weight, 0, bytes, stream);
    cudaMemsetAsync(grad_bias, 0, bytes, stream);
    return last_error();
  }
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using Acc = typename AccOf<T>::type;
    Acc* stats = static_cast<Acc*>(workspace);
    SR_LAUNCH(blocks_for(B * HW, kThreads), kThreads, 0, stream, bwd_x_kernel<T>)(
        static_cast<const T*>(grad_out), static_cast<const T*>(x), static_cast<const T*>(weight),
        static_cast<T*>(grad_x), stats, B, C, HW, eps);
    const unsigned blocks = static_cast<unsigned>(C < 65535 ? C : 65535);
    SR_LAUNCH(blocks, kThreads, 0, stream, bwd_w_kernel<T>)(static_cast<const T*>(grad_out), static_cast<const T*>(x),
                                                            stats, static_cast<T*>(grad_weight),
                                                            static_cast<T*>(grad_bias), B, C, HW);
  });
  return last_error();
}

}  // namespace sr_cuda
