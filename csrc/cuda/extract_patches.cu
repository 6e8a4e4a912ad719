// extract_patches CUDA kernel: one thread per patch writes its corner, then the shared
// crop (gather_patches.cu) copies every window. Below 2^31 patches the corner arithmetic
// (sr::extract_corner's) runs in 32 bits.
#include "cuda/common.cuh"
#include "cuda/extract_patches.cuh"
#include "cuda/gather_patches.cuh"
#include "kernels/extract_patches.h"

namespace sr_cuda {
namespace {

template <typename I>
__global__ void corner_kernel(int64_t* __restrict__ coords, int64_t* __restrict__ order, I N, I per_image, I m2,
                              I lastr, I lastc, I T) {
  for (UIdx<I> u = grid_start<I>(); u < UIdx<I>(N); u += grid_step<I>()) {
    const I q = I(u), b = q / per_image, k = q - b * per_image, i = k / m2, j = k - i * m2;
    coords[3 * int64_t(q)] = b;
    coords[3 * int64_t(q) + 1] = T * i < lastr ? T * i : lastr;  // sr::cover_grid_pos
    coords[3 * int64_t(q) + 2] = T * j < lastc ? T * j : lastc;
    order[q] = q;
  }
}

constexpr int kThreads = 256;

}  // namespace

Status extract_patches_fwd(const void* img, void* patches, int64_t* coords, int64_t* order_ws, DType dtype, int64_t B,
                           int64_t C, int64_t H, int64_t W, int64_t P, int64_t stride, cudaStream_t stream) {
  const auto d = sr::extract_dims(B, H, W, P, stride);
  if (d.N == 0) return "";
  // I holds the patch numbers and the positions (t * k <= t * (m - 1) < H or W + t).
  with_index(sr::imax(3 * d.N, sr::imax(H, W) + stride), [&](auto itag) {
    using I = decltype(itag);
    SR_LAUNCH(blocks_for(d.N, kThreads), kThreads, 0, stream, corner_kernel<I>)(
        coords, order_ws, I(d.N), I(d.m1 * d.m2), I(d.m2), I(H - P), I(W - P), I(stride));
  });
  Status s = last_error();
  if (s[0] != '\0') return s;
  return crop_windows(img, patches, dtype, coords, order_ws, nullptr, d.N, B, C, H, W, P, 1, stream);
}

}  // namespace sr_cuda
