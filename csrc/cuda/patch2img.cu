// patch2img CUDA kernels: one thread per output element, grid-stride loops.
// The arithmetic lives in csrc/kernels/patch2img.h, shared with the CPU kernel.
#include "cuda/common.cuh"
#include "cuda/patch2img.cuh"
#include "kernels/patch2img.h"

namespace sr_cuda {
namespace {

template <typename T>
__global__ void fwd_kernel(const T* __restrict__ patches, T* __restrict__ out, sr::Patch2ImgDims d) {
  using Acc = typename AccOf<T>::type;
  const int64_t n = d.B * d.C * d.H * d.W;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t x = e % d.W, y = (e / d.W) % d.H;
    const int64_t c = (e / (d.W * d.H)) % d.C, b = e / (d.W * d.H * d.C);
    out[e] = sr::patch2img_pixel<T, Acc>(patches, d, b, c, y, x);
  }
}

template <typename T>
__global__ void bwd_kernel(const T* __restrict__ grad_out, T* __restrict__ grad_patches, sr::Patch2ImgDims d) {
  using Acc = typename AccOf<T>::type;
  const int64_t n = d.B * d.L * d.C * d.P * d.P;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t px = e % d.P, py = (e / d.P) % d.P;
    const int64_t c = (e / (d.P * d.P)) % d.C, bl = e / (d.P * d.P * d.C);
    grad_patches[e] = sr::patch2img_grad_element<T, Acc>(grad_out, d, bl / d.L, bl % d.L, c, py, px);
  }
}

constexpr int kThreads = 256;

}  // namespace

Status patch2img_fwd(const void* patches, void* out, DType dtype, int64_t B, int64_t C, int64_t H, int64_t W, int64_t P,
                     int64_t stride, cudaStream_t stream) {
  const auto d = sr::patch2img_dims(B, C, H, W, P, stride);
  const int64_t n = B * C * H * W;
  if (n == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    SR_LAUNCH(blocks_for(n, kThreads), kThreads, 0, stream, fwd_kernel<T>)(static_cast<const T*>(patches),
                                                                           static_cast<T*>(out), d);
  });
  return last_error();
}

Status patch2img_bwd(const void* grad_out, void* grad_patches, DType dtype, int64_t B, int64_t C, int64_t H, int64_t W,
                     int64_t P, int64_t stride, cudaStream_t stream) {
  const auto d = sr::patch2img_dims(B, C, H, W, P, stride);
  const int64_t n = B * d.L * C * P * P;
  if (n == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    SR_LAUNCH(blocks_for(n, kThreads), kThreads, 0, stream, bwd_kernel<T>)(static_cast<const T*>(grad_out),
                                                                           static_cast<T*>(grad_patches), d);
  });
  return last_error();
}

}  // namespace sr_cuda
