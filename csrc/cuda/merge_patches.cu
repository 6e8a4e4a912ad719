// merge_patches on CUDA: coverage count + atomic paste, then one averaging pass; the
// backward is the crop divided by the coverage. Host-side sequencing of the shared
// blocks in gather_patches.cu (no kernels of its own).
#include "cuda/gather_patches.cuh"
#include "cuda/merge_patches.cuh"

namespace sr_cuda {

Status merge_patches_fwd(const void* outputs, void* out, void* acc_ws, int32_t* count_ws, DType dtype,
                         const int64_t* coords, const int64_t* order, int64_t N, int64_t B, int64_t C, int64_t HH,
                         int64_t WW, int64_t Q, int64_t scale, cudaStream_t stream) {
  Status s = window_coverage(count_ws, coords, order, N, HH, WW, Q, scale, stream);
  if (s[0] == '\0') s = paste_windows(outputs, acc_ws, dtype, coords, order, N, C, HH, WW, Q, scale, stream);
  if (s[0] == '\0') s = finish_paste(acc_ws, count_ws, out, dtype, B, C, HH, WW, stream);
  return s;
}

Status merge_patches_bwd(const void* grad, void* grad_outputs, int32_t* count_ws, DType dtype, const int64_t* coords,
                         const int64_t* order, int64_t N, int64_t B, int64_t C, int64_t HH, int64_t WW, int64_t Q,
                         int64_t scale, cudaStream_t stream) {
  (void)B;
  Status s = window_coverage(count_ws, coords, order, N, HH, WW, Q, scale, stream);
  if (s[0] == '\0')
    s = crop_windows(grad, grad_outputs, dtype, coords, order, count_ws, N, C, HH, WW, Q, scale, stream);
  return s;
}

}  // namespace sr_cuda
