// Launcher for the vertex_map CUDA kernel (see csrc/kernels/vertex_map.h).
#pragma once

#include "cuda/launch.h"

namespace sr_cuda {

// idx, rows, cols: n contiguous int64. Values of idx are not range-checked here (that
// would need a device sync); the public op checks them.
Status vertex_map_fwd(const int64_t* idx, int64_t* rows, int64_t* cols, int64_t n, int64_t Hk, int64_t Wk,
                      int64_t scale, int64_t P, int64_t stride, cudaStream_t stream);

}  // namespace sr_cuda
