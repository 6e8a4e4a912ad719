// CPU kernel for vertex_map (OpenMP over the flat indices).
#include <torch/library.h>

#include <tuple>

#include "checks/patch_grids.h"
#include "cpu/dispatch.h"
#include "kernels/vertex_map.h"

namespace {

// Returns how many indices lay outside the key grid; the caller raises after the
// parallel region, since an exception must not leave an OpenMP loop.
int64_t map_impl(const int64_t* idx, int64_t* rows, int64_t* cols, int64_t n, const sr::VertexMapDims d) {
  int64_t bad = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad) if (sr_cpu::worth_threads(n))
  for (int64_t e = 0; e < n; ++e) {
    bad += !sr::vertex_in_range(d, idx[e]);
    sr::vertex_of(d, idx[e], rows + e, cols + e);
  }
  return bad;
}

std::tuple<at::Tensor, at::Tensor> vertex_map_fwd_cpu(const at::Tensor& idx_in, int64_t Hk, int64_t Wk, int64_t scale,
                                                      int64_t patch_size, int64_t stride) {
  TORCH_CHECK_VALUE(idx_in.device().is_cpu(), "idx must be a CPU tensor, got ", idx_in.device());
  sr_check::vertex_map_args(idx_in, Hk, Wk, scale, patch_size, stride);
  const auto d = sr::vertex_map_dims(Hk, Wk, scale, patch_size, stride);
  const at::Tensor idx = idx_in.contiguous();
  at::Tensor rows = at::empty_like(idx), cols = at::empty_like(idx);
  const int64_t bad = map_impl(idx.const_data_ptr<int64_t>(), rows.mutable_data_ptr<int64_t>(),
                               cols.mutable_data_ptr<int64_t>(), idx.numel(), d);
  if (bad) sr_check::index_range(idx, d.n1 * d.n2, "idx", "the key patches");  // raises
  return {rows, cols};
}

}  // namespace

// The schemas of the kernels below (sr_ops/ops/<op>.py calls them; the CUDA glue registers
// the same names for CUDA tensors).
TORCH_LIBRARY_FRAGMENT(sr_ops, m) {
  // idx int64 of any shape -> (rows, cols) like it; values must lie in the key grid.
  m.def("_vertex_map_fwd(Tensor idx, int Hk, int Wk, int scale, int patch_size, int stride) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) { m.impl("_vertex_map_fwd", &vertex_map_fwd_cpu); }
