// CPU backward kernel for cross_scale_knn: d dist / d q = 2 (q - c), scattered over the
// patch pixels. Each (b, c) plane is independent, so planes run in parallel with no
// atomics (deterministic).
#include <torch/library.h>

#include <tuple>

#include "checks/cross_scale_knn.h"
#include "cpu/dispatch.h"
#include "kernels/cross_scale_knn.h"

namespace {

template <typename T>
void knn_backward(const T* g, const int64_t* idx, const T* q, const T* key, T* gq, T* gk, const sr::KnnDims d,
                  int64_t k) {
  const int64_t m = d.m1 * d.m2;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < d.B * d.C; ++plane) {
    const int64_t b = plane / d.C;
    const T* qm = q + plane * d.H * d.W;
    const T* km = key + plane * d.Hk * d.Wk;
    T* gqm = gq + plane * d.H * d.W;
    T* gkm = gk + plane * d.Hk * d.Wk;
    for (int64_t n = 0; n < m; ++n) {
      const int64_t y = d.T * (n / d.m2), x = d.T * (n % d.m2);
      for (int64_t r = 0; r < k; ++r) {
        const T w = T(2) * g[(b * m + n) * k + r];
        if (w == T(0)) continue;
        const int64_t c = idx[(b * m + n) * k + r];
        const int64_t ky = d.T * (c / d.n2), kx = d.T * (c % d.n2);
        for (int64_t dy = 0; dy < d.P; ++dy)
          for (int64_t dx = 0; dx < d.P; ++dx) {
            const T diff = w * (qm[(y + dy) * d.W + x + dx] - km[(ky + dy) * d.Wk + kx + dx]);
            gqm[(y + dy) * d.W + x + dx] += diff;
            gkm[(ky + dy) * d.Wk + kx + dx] -= diff;
          }
      }
    }
  }
}

std::tuple<at::Tensor, at::Tensor> knn_bwd_cpu(const at::Tensor& grad_dist, const at::Tensor& idx_in,
                                               const at::Tensor& query_in, const at::Tensor& key_in, int64_t patch_size,
                                               int64_t stride) {
  sr_cpu::check_cpu_float(query_in, "query");
  const auto d = sr_check::knn_backward_dims(grad_dist, idx_in, query_in, key_in, patch_size, stride);
  const int64_t k = idx_in.size(-1);
  const at::Tensor query = query_in.contiguous(), key = key_in.contiguous();
  const at::Tensor g = grad_dist.to(query.scalar_type()).contiguous(), idx = idx_in.contiguous();
  at::Tensor gq = at::zeros_like(query), gk = at::zeros_like(key);
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "knn_bwd_cpu", [&] {
    knn_backward<scalar_t>(g.const_data_ptr<scalar_t>(), idx.const_data_ptr<int64_t>(),
                           query.const_data_ptr<scalar_t>(), key.const_data_ptr<scalar_t>(),
                           gq.mutable_data_ptr<scalar_t>(), gk.mutable_data_ptr<scalar_t>(), d, k);
  });
  return {gq, gk};
}

}  // namespace

// The schemas of the kernels below (sr_ops/ops/<op>.py calls them; the CUDA glue registers
// the same names for CUDA tensors).
TORCH_LIBRARY_FRAGMENT(sr_ops, m) {
  m.def(
      "_cross_scale_knn_bwd(Tensor grad_dist, Tensor idx, Tensor query, Tensor key, int patch_size, "
      "int stride) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) { m.impl("_cross_scale_knn_bwd", &knn_bwd_cpu); }
