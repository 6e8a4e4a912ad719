// Launchers for the adapn CUDA kernels (see csrc/kernels/adapn.h).
#pragma once

#include "cuda/launch.h"

namespace sr_cuda {

// neighbors / out: contiguous (N, k, C, PP); query: contiguous (N, C, pp); one dtype.
Status adapn_fwd(const void* neighbors, const void* query, void* out, DType dtype, int64_t N, int64_t k, int64_t C,
                 int64_t PP, int64_t pp, double eps, cudaStream_t stream);

// grad_out / grad_neighbors laid out like neighbors, grad_query like query.
Status adapn_bwd(const void* grad_out, const void* neighbors, const void* query, void* grad_neighbors, void* grad_query,
                 DType dtype, int64_t N, int64_t k, int64_t C, int64_t PP, int64_t pp, double eps, cudaStream_t stream);

}  // namespace sr_cuda
