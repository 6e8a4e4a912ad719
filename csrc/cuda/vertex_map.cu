// vertex_map CUDA kernel: one thread per index, grid-stride loop.
#include "cuda/common.cuh"
#include "cuda/vertex_map.cuh"
#include "kernels/vertex_map.h"

namespace sr_cuda {
namespace {

__global__ void map_kernel(const int64_t* __restrict__ idx, int64_t* __restrict__ rows, int64_t* __restrict__ cols,
                           int64_t n, sr::VertexMapDims d) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
    sr::vertex_of(d, idx[e], rows + e, cols + e);
}

constexpr int kThreads = 256;

}  // namespace

Status vertex_map_fwd(const int64_t* idx, int64_t* rows, int64_t* cols, int64_t n, int64_t Hk, int64_t Wk,
                      int64_t scale, int64_t P, int64_t stride, cudaStream_t stream) {
  if (n == 0) return "";
  SR_LAUNCH(blocks_for(n, kThreads), kThreads, 0, stream, map_kernel)(idx, rows, cols, n,
                                                                      sr::vertex_map_dims(Hk, Wk, scale, P, stride));
  return last_error();
}

}  // namespace sr_cuda
