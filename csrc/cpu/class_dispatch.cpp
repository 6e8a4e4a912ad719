// CPU kernel for class_dispatch: per-patch argmax (when given logits), then a stable
// counting sort by class; O(N*K + N), serial past the argmax (N is the patch count).
#include <torch/library.h>

#include <vector>

#include "checks/patch_grids.h"
#include "cpu/dispatch.h"
#include "kernels/class_dispatch.h"

namespace {

template <typename T>
void argmax_rows(const T* logits, int64_t N, int64_t K, int64_t* ids) {
  using Acc = at::opmath_type<T>;
#pragma omp parallel for schedule(static) if (sr_cpu::worth_threads(N * K))
  for (int64_t i = 0; i < N; ++i) ids[i] = sr::row_argmax<T, Acc>(logits + i * K, K);
}

std::tuple<at::Tensor, at::Tensor> class_dispatch_fwd_cpu(const at::Tensor& x_in, int64_t K) {
  TORCH_CHECK_VALUE(x_in.device().is_cpu(), "ids_or_logits must be a CPU tensor, got ", x_in.device());
  sr_check::class_dispatch_args(x_in, K);
  const at::Tensor x = x_in.contiguous();
  const int64_t N = x.size(0);
  at::Tensor ids;
  if (at::isFloatingType(x.scalar_type())) {
    ids = at::empty({N}, x.options().dtype(at::kLong));
    SR_DISPATCH_FLOATS(x.scalar_type(), "class_dispatch_argmax_cpu", [&] {
      argmax_rows<scalar_t>(x.const_data_ptr<scalar_t>(), N, K, ids.mutable_data_ptr<int64_t>());
    });
  } else {
    ids = x;
  }
  const int64_t* id = ids.const_data_ptr<int64_t>();
  at::Tensor counts = at::zeros({K}, x.options().dtype(at::kLong));
  int64_t* cnt = counts.mutable_data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i) {
    if (id[i] < 0 || id[i] >= K) sr_check::index_range(ids, K, "ids", "num_classes");  // raises
    ++cnt[id[i]];
  }
  std::vector<int64_t> next(K, 0);
  for (int64_t k = 1; k < K; ++k) next[k] = next[k - 1] + cnt[k - 1];
  at::Tensor order = at::empty({N}, x.options().dtype(at::kLong));
  int64_t* o = order.mutable_data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i) o[next[id[i]]++] = i;  // ascending i: stable
  return {order, counts};
}

}  // namespace

// The schemas of the kernels below (sr_ops/ops/<op>.py calls them; the CUDA glue registers
// the same names for CUDA tensors).
TORCH_LIBRARY_FRAGMENT(sr_ops, m) {
  m.def("_class_dispatch_fwd(Tensor ids_or_logits, int num_classes) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) { m.impl("_class_dispatch_fwd", &class_dispatch_fwd_cpu); }
