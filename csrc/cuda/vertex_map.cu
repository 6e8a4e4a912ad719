// vertex_map CUDA kernel: a thread per N indices (N = 2, one 128-bit load and two 128-bit
// stores, when the count is even and the tensors 16-byte aligned; else 1), grid-stride loop.
// The glue has range-checked idx, so below 2^31 key patches the row / column split is a 32-bit
// division (sr::vertex_of's arithmetic, in I).
#include "cuda/common.cuh"
#include "cuda/vertex_map.cuh"
#include "kernels/vertex_map.h"

namespace sr_cuda {
namespace {

template <typename I, int N>
__global__ void map_kernel(const int64_t* __restrict__ idx, int64_t* __restrict__ rows, int64_t* __restrict__ cols,
                           I groups, I n2, I step) {
  for (UIdx<I> gi = grid_start<I>(); gi < UIdx<I>(groups); gi += grid_step<I>()) {
    const I e = I(gi) * N;
    int64_t v[N], r[N], c[N];
    load_vec<N>(idx + e, v);
#pragma unroll
    for (int j = 0; j < N; ++j) {
      const I q = I(v[j]) / n2;
      r[j] = int64_t(step * q);
      c[j] = int64_t(step * (I(v[j]) - q * n2));
    }
    store_vec<N>(rows + e, r);
    store_vec<N>(cols + e, c);
  }
}

constexpr int kThreads = 256;

}  // namespace

Status vertex_map_fwd(const int64_t* idx, int64_t* rows, int64_t* cols, int64_t n, int64_t Hk, int64_t Wk,
                      int64_t scale, int64_t P, int64_t stride, cudaStream_t stream) {
  if (n == 0) return "";
  const auto d = sr::vertex_map_dims(Hk, Wk, scale, P, stride);
  const bool vec = n % 2 == 0 && all_aligned16(idx, rows, cols);
  // I must hold the counts, the indices (< n1 * n2) and the coordinates (< step * n1 or n2).
  const int64_t largest = sr::imax(n, sr::imax(d.n1 * d.n2, d.step * sr::imax(d.n1, d.n2)));
  with_index(largest, [&](auto itag) {
    using I = decltype(itag);
    if (vec)
      SR_LAUNCH(blocks_for(n / 2, kThreads), kThreads, 0, stream, map_kernel<I, 2>)(idx, rows, cols, I(n / 2), I(d.n2),
                                                                                    I(d.step));
    else
      SR_LAUNCH(blocks_for(n, kThreads), kThreads, 0, stream, map_kernel<I, 1>)(idx, rows, cols, I(n), I(d.n2),
                                                                                I(d.step));
  });
  return last_error();
}

}  // namespace sr_cuda
