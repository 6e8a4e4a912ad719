// merge_patches on CUDA: one output-stationary averaging paste; the backward counts the
// coverage the same way and crops the gradient divided by it. No atomics. Host-side
// sequencing of the shared blocks in gather_patches.cu (no kernels of its own).
#include "cuda/merge_patches.cuh"

namespace sr_cuda {

Status merge_patches_fwd(const void* outputs, void* out, DType dtype, const PasteIndex& index, int64_t N, int64_t B,
                         int64_t C, int64_t HH, int64_t WW, int64_t Q, cudaStream_t stream) {
  return paste_windows(outputs, out, dtype, index, N, B, C, HH, WW, Q, true, stream);
}

Status merge_patches_bwd(const void* grad, void* grad_outputs, int32_t* count_ws, DType dtype, const int64_t* coords,
                         const int64_t* order, const PasteIndex& index, int64_t N, int64_t B, int64_t C, int64_t HH,
                         int64_t WW, int64_t Q, int64_t scale, cudaStream_t stream) {
  Status s = paste_windows(nullptr, count_ws, dtype, index, N, B, 1, HH, WW, Q, false, stream);
  if (s[0] == '\0')
    s = crop_windows(grad, grad_outputs, dtype, coords, order, count_ws, N, B, C, HH, WW, Q, scale, stream);
  return s;
}

}  // namespace sr_cuda
