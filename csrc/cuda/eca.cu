// eca CUDA kernels, the three steps of csrc/kernels/eca.h: a block per (b, c) plane for
// the pooled sums (shared-memory tree reduction), a thread per image for the tiny
// per-image step (C * k multiply-adds), a grid-stride elementwise pass. The weight
// gradient is written per image and summed over the images in order by one small
// kernel (no atomics, deterministic).
#include "cuda/common.cuh"
#include "cuda/eca.cuh"
#include "kernels/convert.h"
#include "kernels/eca.h"

namespace sr_cuda {
namespace {

constexpr int kThreads = 256;

template <typename Acc>
__device__ Acc block_sum(Acc v, Acc* buf) {
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
    __syncthreads();
  }
  const Acc total = buf[0];
  __syncthreads();
  return total;
}

// s = plane means; t = plane sums of g * x when g is given.
template <typename T>
__global__ void plane_kernel(const T* __restrict__ x, const T* __restrict__ g, typename AccOf<T>::type* __restrict__ s,
                             typename AccOf<T>::type* __restrict__ t, int64_t planes, int64_t HW) {
  using Acc = typename AccOf<T>::type;
  __shared__ Acc buf[kThreads];
  for (int64_t pl = blockIdx.x; pl < planes; pl += gridDim.x) {
    const T* xp = x + pl * HW;
    Acc sx = Acc(0), sgx = Acc(0);
    for (int64_t e = threadIdx.x; e < HW; e += blockDim.x) {
      const Acc xv = sr_cast<Acc>(xp[e]);
      sx += xv;
      if (g != nullptr) sgx += sr_cast<Acc>(g[pl * HW + e]) * xv;
    }
    sx = block_sum(sx, buf);
    if (g != nullptr) sgx = block_sum(sgx, buf);
    if (threadIdx.x == 0) {
      s[pl] = sx / Acc(HW);
      if (g != nullptr) t[pl] = sgx;
    }
  }
}

template <typename T>
__global__ void gate_kernel(const typename AccOf<T>::type* __restrict__ s, const T* __restrict__ w,
                            typename AccOf<T>::type* __restrict__ gate, int64_t B, int64_t C, int64_t k) {
  using Acc = typename AccOf<T>::type;
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < B; b += int64_t(gridDim.x) * blockDim.x)
    sr::eca_image_gates<T, Acc>(s + b * C, w, gate + b * C, C, k);
}

template <typename T>
__global__ void gate_bwd_kernel(const typename AccOf<T>::type* __restrict__ s,
                                const typename AccOf<T>::type* __restrict__ t, const T* __restrict__ w,
                                typename AccOf<T>::type* __restrict__ gate, typename AccOf<T>::type* __restrict__ da,
                                typename AccOf<T>::type* __restrict__ ds, typename AccOf<T>::type* __restrict__ gw_part,
                                int64_t B, int64_t C, int64_t HW, int64_t k) {
  using Acc = typename AccOf<T>::type;
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < B; b += int64_t(gridDim.x) * blockDim.x) {
    for (int64_t j = 0; j < k; ++j) gw_part[b * k + j] = Acc(0);
    sr::eca_image_bwd<T, Acc>(s + b * C, t + b * C, w, gate + b * C, da + b * C, ds + b * C, gw_part + b * k, C, k, HW);
  }
}

template <typename T>
__global__ void weight_sum_kernel(const typename AccOf<T>::type* __restrict__ gw_part, T* __restrict__ gw, int64_t B,
                                  int64_t k) {
  using Acc = typename AccOf<T>::type;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < k; j += int64_t(gridDim.x) * blockDim.x) {
    Acc v = Acc(0);
    for (int64_t b = 0; b < B; ++b) v += gw_part[b * k + j];
    gw[j] = sr_cast<T>(v);
  }
}

// y = x * gate[plane] (+ add[plane]).
template <typename T>
__global__ void apply_kernel(const T* __restrict__ x, const typename AccOf<T>::type* __restrict__ gate,
                             const typename AccOf<T>::type* __restrict__ add, T* __restrict__ y, int64_t n,
                             int64_t HW) {
  using Acc = typename AccOf<T>::type;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t pl = i / HW;
    Acc v = sr_cast<Acc>(x[i]) * gate[pl];
    if (add != nullptr) v += add[pl];
    y[i] = sr_cast<T>(v);
  }
}

unsigned plane_blocks(int64_t planes) {
  return static_cast<unsigned>(planes < 65535 * 32 ? (planes > 0 ? planes : 1) : 65535 * 32);
}

}  // namespace

Status eca_fwd(const void* x, const void* weight, void* y, void* workspace, DType dtype, int64_t B, int64_t C,
               int64_t HW, int64_t k, cudaStream_t stream) {
  if (B * C * HW == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using Acc = typename AccOf<T>::type;
    Acc* s = static_cast<Acc*>(workspace);
    Acc* gate = s + B * C;
    const T* xt = static_cast<const T*>(x);
    SR_LAUNCH(plane_blocks(B * C), kThreads, 0, stream, plane_kernel<T>)(xt, nullptr, s, nullptr, B * C, HW);
    SR_LAUNCH(blocks_for(B, 64), 64, 0, stream, gate_kernel<T>)(s, static_cast<const T*>(weight), gate, B, C, k);
    SR_LAUNCH(blocks_for(B * C * HW, kThreads), kThreads, 0, stream, apply_kernel<T>)(
        xt, gate, nullptr, static_cast<T*>(y), B * C * HW, HW);
  });
  return last_error();
}

Status eca_bwd(const void* grad_out, const void* x, const void* weight, void* grad_x, void* grad_weight,
               void* workspace, DType dtype, int64_t B, int64_t C, int64_t HW, int64_t k, cudaStream_t stream) {
  if (k == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using Acc = typename AccOf<T>::type;
    Acc* s = static_cast<Acc*>(workspace);
    Acc *t = s + B * C, *gate = t + B * C, *da = gate + B * C, *ds = da + B * C;
    Acc* gw_part = ds + B * C;
    const T* g = static_cast<const T*>(grad_out);
    if (B * C * HW > 0) {
      SR_LAUNCH(plane_blocks(B * C), kThreads, 0, stream, plane_kernel<T>)(static_cast<const T*>(x), g, s, t, B * C,
                                                                           HW);
      SR_LAUNCH(blocks_for(B, 64), 64, 0, stream, gate_bwd_kernel<T>)(s, t, static_cast<const T*>(weight), gate, da, ds,
                                                                      gw_part, B, C, HW, k);
      SR_LAUNCH(blocks_for(B * C * HW, kThreads), kThreads, 0, stream, apply_kernel<T>)(
          g, gate, ds, static_cast<T*>(grad_x), B * C * HW, HW);
    }
    // B * C == 0 sums no images: zeros.
    SR_LAUNCH(1, 64, 0, stream, weight_sum_kernel<T>)(gw_part, static_cast<T*>(grad_weight), B * C > 0 ? B : 0, k);
  });
  return last_error();
}

}  // namespace sr_cuda
