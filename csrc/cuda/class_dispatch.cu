// class_dispatch CUDA kernels: a stable counting sort over many one-warp blocks, with no
// atomics. Each block classifies its chunk (argmax of the logits, or the ids) and writes
// its per-class counts; the glue turns them into exclusive offsets (class-major, so block
// j's class-k patches start after every lower class and every earlier block's class-k
// patches); a second pass places each patch at its block's offset plus its rank among the
// lower lanes of its class (__match_any_sync). Same order on every run: the reference's.
#include "cuda/class_dispatch.cuh"
#include "cuda/common.cuh"
#include "kernels/class_dispatch.h"

namespace sr_cuda {
namespace {

constexpr unsigned kFull = 0xffffffffu;

template <typename T, typename Idx>
__global__ void __launch_bounds__(32)
    hist_kernel(const T* __restrict__ logits, const int64_t* __restrict__ ids_in, int32_t* __restrict__ ids,
                int64_t* __restrict__ hist, Idx N, int K, int chunk) {
  using Acc = typename AccOf<T>::type;
  const int lane = threadIdx.x, blocks = gridDim.x;
  const Idx i = Idx(blockIdx.x) * chunk + lane;
  const bool live = lane < chunk && i < N;
  int cls = -1;
  if (live) {
    cls = logits != nullptr ? int(sr::row_argmax<T, Acc>(logits + i * K, K)) : int(ids_in[i]);
    ids[i] = cls;
  }
  const unsigned peers = __match_any_sync(kFull, cls);
  if (live && lane == __ffs(int(peers)) - 1) hist[int64_t(cls) * blocks + blockIdx.x] = __popc(peers);
}

template <typename Idx>
__global__ void __launch_bounds__(32) place_kernel(const int32_t* __restrict__ ids, const int64_t* __restrict__ offsets,
                                                   int64_t* __restrict__ order, Idx N, int chunk) {
  const int lane = threadIdx.x, blocks = gridDim.x;
  const Idx i = Idx(blockIdx.x) * chunk + lane;
  const bool live = lane < chunk && i < N;
  const int cls = live ? ids[i] : -1;
  const unsigned peers = __match_any_sync(kFull, cls);
  const int rank = __popc(peers & ((1u << lane) - 1u));
  if (live) order[offsets[int64_t(cls) * blocks + blockIdx.x] + rank] = i;
}

constexpr int64_t kInt32Limit = int64_t(1) << 31;

unsigned blocks_of(int64_t N) {
  const int64_t chunk = dispatch_chunk(N);
  return unsigned((N + chunk - 1) / chunk);
}

}  // namespace

Status class_dispatch_hist(const void* logits, const int64_t* ids, DType dtype, int32_t* ids_ws, int64_t* hist,
                           int64_t N, int64_t K, cudaStream_t stream) {
  if (N == 0) return "";
  const int chunk = int(dispatch_chunk(N));
  const bool big = N * K >= kInt32Limit;
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* x = static_cast<const T*>(logits);
    if (big) {
      SR_LAUNCH(blocks_of(N), 32, 0, stream, hist_kernel<T, int64_t>)(x, ids, ids_ws, hist, N, K, chunk);
    } else {
      SR_LAUNCH(blocks_of(N), 32, 0, stream, hist_kernel<T, int32_t>)(x, ids, ids_ws, hist, N, K, chunk);
    }
  });
  return last_error();
}

Status class_dispatch_place(const int32_t* ids_ws, const int64_t* offsets, int64_t* order, int64_t N,
                            cudaStream_t stream) {
  if (N == 0) return "";
  const int chunk = int(dispatch_chunk(N));
  if (N >= kInt32Limit) {
    SR_LAUNCH(blocks_of(N), 32, 0, stream, place_kernel<int64_t>)(ids_ws, offsets, order, N, chunk);
  } else {
    SR_LAUNCH(blocks_of(N), 32, 0, stream, place_kernel<int32_t>)(ids_ws, offsets, order, N, chunk);
  }
  return last_error();
}

}  // namespace sr_cuda
