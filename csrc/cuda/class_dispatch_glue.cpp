// Registers the class_dispatch CUDA launcher for CUDA tensors. The public op has already
// checked that integer ids lie in [0, num_classes).
#include <torch/library.h>

#include "checks/patch_grids.h"
#include "cuda/glue.h"
#include "cuda/class_dispatch.cuh"

namespace {

std::tuple<at::Tensor, at::Tensor> class_dispatch_fwd_cuda(const at::Tensor& x_in, int64_t K) {
  sr_cuda::check_device(x_in, "ids_or_logits");
  const bool logits = sr_check::class_dispatch_args(x_in, K);
  if (!logits) sr_check::index_range(x_in, K, "ids", "num_classes");
  const sr_cuda::DeviceGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const int64_t N = x.size(0);
  const auto idx = x.options().dtype(at::kLong);
  at::Tensor ids = at::empty({N}, idx), next = at::empty({K}, idx);
  at::Tensor counts = at::zeros({K}, idx), order = at::empty({N}, idx);
  sr_cuda::check_status(sr_cuda::class_dispatch_fwd(
                            logits ? x.const_data_ptr() : nullptr, logits ? nullptr : x.const_data_ptr<int64_t>(),
                            logits ? sr_cuda::dtype_of(x) : sr_cuda::DType::kFloat32, ids.mutable_data_ptr<int64_t>(),
                            next.mutable_data_ptr<int64_t>(), counts.mutable_data_ptr<int64_t>(),
                            order.mutable_data_ptr<int64_t>(), N, K, sr_cuda::stream_of(x)),
                        "class_dispatch kernels");
  return {order, counts};
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) { m.impl("_class_dispatch_fwd", &class_dispatch_fwd_cuda); }
