// gather_patches CUDA kernels and the crop / paste blocks shared with extract and merge.
// Crops are output-stationary (one thread per output element); pastes scatter with
// atomic adds into a float accumulator, then one pass converts (or averages) it.
#include "cuda/common.cuh"
#include "cuda/gather_patches.cuh"
#include "kernels/convert.h"
#include "kernels/gather_patches.h"
#include "kernels/merge_patches.h"

namespace sr_cuda {
namespace {

constexpr int kThreads = 256;

// Paste accumulator: double for float/double, float for the half types (exact sums of
// equal values, so averaging identical overlaps returns the value bit for bit).
template <typename T>
struct PasteAccOf {
  using type = float;
};
template <>
struct PasteAccOf<float> {
  using type = double;
};
template <>
struct PasteAccOf<double> {
  using type = double;
};

#define SR_GRID_STRIDE(e, n) \
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < (n); e += int64_t(gridDim.x) * blockDim.x)

template <typename T>
__global__ void crop_kernel(const T* __restrict__ src, T* __restrict__ dst, const int64_t* __restrict__ coords,
                            const int64_t* __restrict__ order, const int32_t* __restrict__ count, int64_t n, int64_t C,
                            int64_t H, int64_t W, int64_t Q, int64_t scale) {
  using Acc = typename AccOf<T>::type;
  SR_GRID_STRIDE(e, n) {
    const int64_t off = sr::crop_source(coords, order, scale, C, H, W, Q, e);
    if (count == nullptr) {
      dst[e] = src[off];
    } else {
      const int64_t plane = H * W, b = off / (C * plane);  // coverage is per (b, y, x)
      dst[e] = sr::merge_grad<T, Acc>(src[off], count[b * plane + off % plane]);
    }
  }
}

template <typename T, typename Acc>
__global__ void paste_kernel(const T* __restrict__ src, Acc* __restrict__ acc, const int64_t* __restrict__ coords,
                             const int64_t* __restrict__ order, int64_t n, int64_t C, int64_t H, int64_t W, int64_t Q,
                             int64_t scale) {
  SR_GRID_STRIDE(e, n) atomicAdd(acc + sr::crop_source(coords, order, scale, C, H, W, Q, e), sr_cast<Acc>(src[e]));
}

__global__ void coverage_kernel(int32_t* __restrict__ count, const int64_t* __restrict__ coords,
                                const int64_t* __restrict__ order, int64_t n, int64_t H, int64_t W, int64_t Q,
                                int64_t scale) {
  SR_GRID_STRIDE(e, n) atomicAdd(count + sr::crop_source(coords, order, scale, 1, H, W, Q, e), 1);
}

template <typename T, typename Acc>
__global__ void finish_kernel(const Acc* __restrict__ acc, const int32_t* __restrict__ count, T* __restrict__ dst,
                              int64_t n, int64_t C, int64_t plane) {
  SR_GRID_STRIDE(e, n) {
    dst[e] = count == nullptr ? sr_cast<T>(acc[e])
                              : sr::merge_pixel<T, Acc>(acc[e], count[(e / (C * plane)) * plane + e % plane]);
  }
}

}  // namespace

Status crop_windows(const void* src, void* dst, DType dtype, const int64_t* coords, const int64_t* order,
                    const int32_t* count, int64_t N, int64_t C, int64_t H, int64_t W, int64_t Q, int64_t scale,
                    cudaStream_t stream) {
  const int64_t n = N * C * Q * Q;
  if (n == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    SR_LAUNCH(blocks_for(n, kThreads), kThreads, 0, stream, crop_kernel<T>)(
        static_cast<const T*>(src), static_cast<T*>(dst), coords, order, count, n, C, H, W, Q, scale);
  });
  return last_error();
}

Status paste_windows(const void* src, void* acc, DType dtype, const int64_t* coords, const int64_t* order, int64_t N,
                     int64_t C, int64_t H, int64_t W, int64_t Q, int64_t scale, cudaStream_t stream) {
  const int64_t n = N * C * Q * Q;
  if (n == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using Acc = typename PasteAccOf<T>::type;
    SR_LAUNCH(blocks_for(n, kThreads), kThreads, 0, stream, paste_kernel<T, Acc>)(
        static_cast<const T*>(src), static_cast<Acc*>(acc), coords, order, n, C, H, W, Q, scale);
  });
  return last_error();
}

Status window_coverage(int32_t* count, const int64_t* coords, const int64_t* order, int64_t N, int64_t H, int64_t W,
                       int64_t Q, int64_t scale, cudaStream_t stream) {
  const int64_t n = N * Q * Q;
  if (n == 0) return "";
  SR_LAUNCH(blocks_for(n, kThreads), kThreads, 0, stream, coverage_kernel)(count, coords, order, n, H, W, Q, scale);
  return last_error();
}

Status finish_paste(const void* acc, const int32_t* count, void* dst, DType dtype, int64_t B, int64_t C, int64_t H,
                    int64_t W, cudaStream_t stream) {
  const int64_t n = B * C * H * W;
  if (n == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using Acc = typename PasteAccOf<T>::type;
    SR_LAUNCH(blocks_for(n, kThreads), kThreads, 0, stream, finish_kernel<T, Acc>)(static_cast<const Acc*>(acc), count,
                                                                                   static_cast<T*>(dst), n, C, H * W);
  });
  return last_error();
}

}  // namespace sr_cuda
