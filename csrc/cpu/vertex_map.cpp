// CPU kernel for vertex_map (OpenMP over the flat indices).
#include <torch/library.h>

#include <tuple>

#include "cpu/dispatch.h"
#include "kernels/vertex_map.h"

namespace {

// Returns how many indices lay outside the key grid; the caller raises after the
// parallel region, since an exception must not leave an OpenMP loop.
int64_t map_impl(const int64_t* idx, int64_t* rows, int64_t* cols, int64_t n,
                 const sr::VertexMapDims d) {
  int64_t bad = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad) if (sr_cpu::worth_threads(n))
  for (int64_t e = 0; e < n; ++e) {
    bad += !sr::vertex_in_range(d, idx[e]);
    sr::vertex_of(d, idx[e], rows + e, cols + e);
  }
  return bad;
}

std::tuple<at::Tensor, at::Tensor> vertex_map_fwd_cpu(const at::Tensor& idx_in, int64_t Hk,
                                                      int64_t Wk, int64_t scale,
                                                      int64_t patch_size, int64_t stride) {
  TORCH_CHECK(idx_in.device().is_cpu(), "idx must be a CPU tensor, got ", idx_in.device());
  TORCH_CHECK(idx_in.scalar_type() == at::kLong, "idx must be int64, got ", idx_in.scalar_type());
  TORCH_CHECK(scale > 0 && patch_size > 0 && stride > 0,
              "scale, patch_size and stride must be positive");
  TORCH_CHECK(patch_size <= Hk && patch_size <= Wk, "patch_size ", patch_size,
              " larger than key_hw (", Hk, ", ", Wk, ")");
  const auto d = sr::vertex_map_dims(Hk, Wk, scale, patch_size, stride);
  const at::Tensor idx = idx_in.contiguous();
  at::Tensor rows = at::empty_like(idx), cols = at::empty_like(idx);
  const int64_t bad = map_impl(idx.const_data_ptr<int64_t>(), rows.mutable_data_ptr<int64_t>(),
                               cols.mutable_data_ptr<int64_t>(), idx.numel(), d);
  TORCH_CHECK(bad == 0, bad, " idx values outside [0, ", d.n1 * d.n2, ") (the key patches)");
  return {rows, cols};
}

}  // namespace

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) { m.impl("_vertex_map_fwd", &vertex_map_fwd_cpu); }
