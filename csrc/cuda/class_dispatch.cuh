// Launchers for the class_dispatch CUDA kernels (see csrc/kernels/class_dispatch.h): a
// parallel stable counting sort. Block j takes patches [j * chunk, (j + 1) * chunk).
#pragma once

#include "cuda/launch.h"

namespace sr_cuda {

// Patches per block: at most a warp, and few enough that ClassSR's ~3000 patches of a 2K
// image fill two waves of an H100's 132 SMs.
inline int64_t dispatch_chunk(int64_t N) {
  const int64_t c = N / (2 * 132);
  return c < 1 ? 1 : (c > 32 ? 32 : c);
}

// logits (N, K) in dtype, or ids (N,) int64 when logits is null -> ids_ws (N,) int32 the
// classes, hist (K, blocks) int64 zero-filled: block j's patches of class k.
Status class_dispatch_hist(const void* logits, const int64_t* ids, DType dtype, int32_t* ids_ws, int64_t* hist,
                           int64_t N, int64_t K, cudaStream_t stream);

// offsets (K, blocks) int64: the exclusive prefix sum of hist (class-major), i.e. where
// block j's first patch of class k goes; order (N,) int64 gets every patch, stable.
Status class_dispatch_place(const int32_t* ids_ws, const int64_t* offsets, int64_t* order, int64_t N,
                            cudaStream_t stream);

}  // namespace sr_cuda
