// CPU kernel for class_dispatch: per-patch argmax (when given logits), then a stable
// counting sort by class; O(N*K + N), serial past the argmax (N is the patch count).
#include <torch/library.h>

#include <vector>

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
  TORCH_CHECK(x_in.device().is_cpu(), "ids_or_logits must be a CPU tensor");
  TORCH_CHECK(K > 0, "num_classes must be positive");
  const at::Tensor x = x_in.contiguous();
  const int64_t N = x.size(0);
  at::Tensor ids;
  if (at::isFloatingType(x.scalar_type())) {
    TORCH_CHECK(x.dim() == 2 && x.size(1) == K, "logits must be (N, num_classes)");
    ids = at::empty({N}, x.options().dtype(at::kLong));
    SR_DISPATCH_FLOATS(x.scalar_type(), "class_dispatch_argmax_cpu", [&] {
      argmax_rows<scalar_t>(x.const_data_ptr<scalar_t>(), N, K, ids.mutable_data_ptr<int64_t>());
    });
  } else {
    TORCH_CHECK(x.dim() == 1 && x.scalar_type() == at::kLong, "ids must be (N,) int64");
    ids = x;
  }
  const int64_t* id = ids.const_data_ptr<int64_t>();
  at::Tensor counts = at::zeros({K}, x.options().dtype(at::kLong));
  int64_t* cnt = counts.mutable_data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i) {
    TORCH_CHECK(id[i] >= 0 && id[i] < K, "ids[", i, "] = ", id[i], " is not in [0, ", K, ")");
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

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) { m.impl("_class_dispatch_fwd", &class_dispatch_fwd_cpu); }
