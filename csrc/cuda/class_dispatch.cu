// class_dispatch CUDA kernels: one thread per patch takes the argmax and counts its
// class; then a single warp places the patches 32 at a time. Within a chunk,
// __match_any_sync finds the lanes of the same class, so each lane's slot is its class's
// running offset plus its rank among lower lanes: a stable counting sort in one pass.
#include "cuda/class_dispatch.cuh"
#include "cuda/common.cuh"
#include "kernels/class_dispatch.h"

namespace sr_cuda {
namespace {

template <typename T>
__global__ void classes_kernel(const T* __restrict__ logits, const int64_t* __restrict__ ids_in,
                               int64_t* __restrict__ ids, unsigned long long* __restrict__ counts, int64_t N,
                               int64_t K) {
  using Acc = typename AccOf<T>::type;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < N; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = logits != nullptr ? sr::row_argmax<T, Acc>(logits + i * K, K) : ids_in[i];
    ids[i] = k;
    atomicAdd(counts + k, 1ull);
  }
}

__global__ void place_kernel(const int64_t* __restrict__ ids, const int64_t* __restrict__ counts,
                             int64_t* __restrict__ next, int64_t* __restrict__ order, int64_t N, int64_t K) {
  const unsigned lane = threadIdx.x, full = 0xffffffffu;
  if (lane == 0) {
    int64_t run = 0;
    for (int64_t k = 0; k < K; ++k) {
      next[k] = run;
      run += counts[k];
    }
  }
  __syncwarp();
  for (int64_t base = 0; base < N; base += 32) {
    const int64_t i = base + lane;
    const bool live = i < N;
    const long long cls = live ? ids[i] : -1;
    const unsigned peers = __match_any_sync(full, cls);
    const int rank = __popc(peers & ((1u << lane) - 1u));
    if (live) order[next[cls] + rank] = i;
    __syncwarp();
    if (live && int(lane) == __ffs(peers) - 1) next[cls] += __popc(peers);
    __syncwarp();
  }
}

constexpr int kThreads = 256;

}  // namespace

Status class_dispatch_fwd(const void* logits, const int64_t* ids, DType dtype, int64_t* ids_ws, int64_t* next_ws,
                          int64_t* counts, int64_t* order, int64_t N, int64_t K, cudaStream_t stream) {
  if (N == 0) return "";
  auto* cnt = reinterpret_cast<unsigned long long*>(counts);
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    SR_LAUNCH(blocks_for(N, kThreads), kThreads, 0, stream, classes_kernel<T>)(static_cast<const T*>(logits), ids,
                                                                               ids_ws, cnt, N, K);
  });
  Status s = last_error();
  if (s[0] != '\0') return s;
  SR_LAUNCH(1, 32, 0, stream, place_kernel)(ids_ws, counts, next_ws, order, N, K);
  return last_error();
}

}  // namespace sr_cuda
