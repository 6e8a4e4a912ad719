// Registers the class_dispatch CUDA launchers for CUDA tensors. The public op has already
// checked that integer ids lie in [0, num_classes). The per-block counts become offsets
// through ATen's integer prefix sum (exact, so deterministic).
#include <torch/library.h>

#include "checks/patch_grids.h"
#include "cuda/class_dispatch.cuh"
#include "cuda/glue.h"

namespace {

std::tuple<at::Tensor, at::Tensor> class_dispatch_fwd_cuda(const at::Tensor& x_in, int64_t K) {
  sr_cuda::check_device(x_in, "ids_or_logits");
  const bool logits = sr_check::class_dispatch_args(x_in, K);
  if (!logits) sr_check::index_range(x_in, K, "ids", "num_classes");
  const sr_cuda::DeviceGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const int64_t N = x.size(0);
  const auto idx = x.options().dtype(at::kLong);
  const int64_t chunk = sr_cuda::dispatch_chunk(N), blocks = (N + chunk - 1) / chunk;
  at::Tensor ids = at::empty({N}, idx.dtype(at::kInt)), hist = at::zeros({K, blocks}, idx);
  at::Tensor order = at::empty({N}, idx);
  const auto stream = sr_cuda::stream_of(x);
  sr_cuda::check_status(sr_cuda::class_dispatch_hist(
                            logits ? x.const_data_ptr() : nullptr, logits ? nullptr : x.const_data_ptr<int64_t>(),
                            logits ? sr_cuda::dtype_of(x) : sr_cuda::DType::kFloat32, ids.mutable_data_ptr<int32_t>(),
                            hist.mutable_data_ptr<int64_t>(), N, K, stream),
                        "class_dispatch histogram kernel");
  const at::Tensor flat = hist.flatten();
  const at::Tensor offsets = (flat.cumsum(0) - flat).contiguous();
  sr_cuda::check_status(sr_cuda::class_dispatch_place(ids.const_data_ptr<int32_t>(), offsets.const_data_ptr<int64_t>(),
                                                      order.mutable_data_ptr<int64_t>(), N, stream),
                        "class_dispatch placement kernel");
  return {order, hist.sum(1)};
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) { m.impl("_class_dispatch_fwd", &class_dispatch_fwd_cuda); }
