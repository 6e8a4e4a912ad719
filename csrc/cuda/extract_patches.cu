// extract_patches CUDA kernel: one thread per patch writes its corner, then the shared
// crop (gather_patches.cu) copies every window.
#include "cuda/common.cuh"
#include "cuda/extract_patches.cuh"
#include "cuda/gather_patches.cuh"
#include "kernels/extract_patches.h"

namespace sr_cuda {
namespace {

__global__ void corner_kernel(int64_t* __restrict__ coords, int64_t* __restrict__ order, sr::ExtractDims d) {
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < d.N; q += int64_t(gridDim.x) * blockDim.x) {
    sr::extract_corner(d, q, coords + 3 * q, coords + 3 * q + 1, coords + 3 * q + 2);
    order[q] = q;
  }
}

constexpr int kThreads = 256;

}  // namespace

Status extract_patches_fwd(const void* img, void* patches, int64_t* coords, int64_t* order_ws, DType dtype, int64_t B,
                           int64_t C, int64_t H, int64_t W, int64_t P, int64_t stride, cudaStream_t stream) {
  const auto d = sr::extract_dims(B, H, W, P, stride);
  if (d.N == 0) return "";
  SR_LAUNCH(blocks_for(d.N, kThreads), kThreads, 0, stream, corner_kernel)(coords, order_ws, d);
  Status s = last_error();
  if (s[0] != '\0') return s;
  return crop_windows(img, patches, dtype, coords, order_ws, nullptr, d.N, B, C, H, W, P, 1, stream);
}

}  // namespace sr_cuda
