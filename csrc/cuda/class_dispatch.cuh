// Launcher for the class_dispatch CUDA kernels (see csrc/kernels/class_dispatch.h).
#pragma once

#include "cuda/launch.h"

namespace sr_cuda {

// logits (N, K) in dtype, or ids (N,) int64 when logits is null; ids_ws (N,) int64 and
// next_ws (K,) int64 scratch; counts (K,) int64 zero-filled; order (N,) int64.
Status class_dispatch_fwd(const void* logits, const int64_t* ids, DType dtype, int64_t* ids_ws, int64_t* next_ws,
                          int64_t* counts, int64_t* order, int64_t N, int64_t K, cudaStream_t stream);

}  // namespace sr_cuda
