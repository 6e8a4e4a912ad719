// Registers the graph_aggregate CUDA launchers for CUDA tensors.
#include <torch/library.h>

#include <tuple>

#include "checks/graph_aggregate.h"
#include "cuda/glue.h"
#include "cuda/graph_aggregate.cuh"
#include "cuda/inverse_index.h"
#include "kernels/graph_aggregate.h"  // the workspace strides

namespace {

at::ScalarType acc_type(const at::Tensor& t) { return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

sr_cuda::GraphAggShape shape_of(const at::Tensor& feat, const at::Tensor& idx, int64_t Hk, int64_t Wk, int64_t scale,
                                int64_t p, int64_t t) {
  return {feat.size(0), feat.size(1), feat.size(2), feat.size(3), idx.size(2), Hk, Wk, scale, p, t};
}

c10::optional<at::Tensor> contiguous(const c10::optional<at::Tensor>& w) {
  return w.has_value() ? c10::optional<at::Tensor>(w->contiguous()) : c10::nullopt;
}

at::Tensor graph_aggregate_fwd_cuda(const at::Tensor& feat_in, const at::Tensor& idx_in, const at::Tensor& qf_in,
                                    const c10::optional<at::Tensor>& weights_in, int64_t Hk, int64_t Wk, int64_t scale,
                                    int64_t patch_size, int64_t stride, bool adapn, double eps) {
  sr_cuda::check_device(feat_in, "feat");
  sr_check::graph_aggregate_args(feat_in, idx_in, qf_in, weights_in, Hk, Wk, scale, patch_size, stride);
  const sr_cuda::DeviceGuard guard(feat_in.device());
  const at::Tensor feat = feat_in.contiguous(), idx = idx_in.contiguous(), qf = qf_in.contiguous();
  const auto weights = contiguous(weights_in);
  const auto s = shape_of(feat, idx, Hk, Wk, scale, patch_size, stride);
  const int64_t m = idx.size(1);
  at::Tensor ab = at::empty({s.B, m, s.k, s.C, sr::kAffineStride}, feat.options().dtype(acc_type(feat)));
  at::Tensor out = weights ? at::empty({s.B, s.C, scale * s.H, scale * s.W}, feat.options())
                           : at::empty({s.B, s.k, s.C, scale * s.H, scale * s.W}, feat.options());
  sr_cuda::check_status(sr_cuda::graph_aggregate_fwd(feat.const_data_ptr(), idx.const_data_ptr<int64_t>(),
                                                     qf.const_data_ptr(), weights ? weights->const_data_ptr() : nullptr,
                                                     ab.mutable_data_ptr(), out.mutable_data_ptr(),
                                                     sr_cuda::dtype_of(feat), s, adapn, eps, sr_cuda::stream_of(feat)),
                        "graph_aggregate forward kernels");
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> graph_aggregate_bwd_cuda(
    const at::Tensor& grad_in, const at::Tensor& feat_in, const at::Tensor& idx_in, const at::Tensor& qf_in,
    const c10::optional<at::Tensor>& weights_in, int64_t Hk, int64_t Wk, int64_t scale, int64_t patch_size,
    int64_t stride, bool adapn, double eps) {
  sr_cuda::check_device(feat_in, "feat");
  sr_check::graph_aggregate_args(feat_in, idx_in, qf_in, weights_in, Hk, Wk, scale, patch_size, stride);
  sr_check::graph_aggregate_grad(grad_in, feat_in, idx_in, weights_in, scale);
  const sr_cuda::DeviceGuard guard(feat_in.device());
  const at::Tensor feat = feat_in.contiguous(), idx = idx_in.contiguous(), qf = qf_in.contiguous();
  const at::Tensor grad = grad_in.to(feat.scalar_type()).contiguous();
  const auto weights = contiguous(weights_in);
  const auto s = shape_of(feat, idx, Hk, Wk, scale, patch_size, stride);
  const int64_t m = idx.size(1), k = s.k;
  const auto acc = feat.options().dtype(acc_type(feat));
  at::Tensor coef = at::empty({s.B, m, k, s.C, sr::kCoefStride}, acc);
  at::Tensor qcoef = at::empty({s.B, m, s.C, sr::kQueryCoefStride}, acc);
  at::Tensor g_feat = at::empty_like(feat);
  at::Tensor g_qf = at::zeros_like(qf);
  at::Tensor g_w = weights ? at::empty_like(*weights) : at::empty({0}, feat.options());
  // The inverse index of idx and each sorted entry's (e, r, i, j): csrc/cuda/inverse_index.h.
  const int64_t n1 = sr::grid_len(Hk, patch_size, stride), n2 = sr::grid_len(Wk, patch_size, stride);
  const bool wide = sr_cuda::needs_wide(
      {feat.numel(), grad.numel(), weights ? weights->numel() : 0, coef.numel(), idx.numel() * 4, s.B * n1 * n2 + 1});
  const auto it = wide ? at::kLong : at::kInt;
  const auto inv = sr_cuda::inverse_index(idx, n1 * n2, it);
  const int64_t m2 = sr::grid_len(s.W, patch_size, stride);
  const at::Tensor e = inv.order, q = at::floor_divide(e, k).remainder(m);
  const at::Tensor entries =
      at::stack({e, e.remainder(k), at::floor_divide(q, m2), q.remainder(m2)}, 1).to(it).contiguous();
  sr_cuda::check_status(
      sr_cuda::graph_aggregate_bwd(grad.const_data_ptr(), feat.const_data_ptr(), idx.const_data_ptr<int64_t>(),
                                   qf.const_data_ptr(), weights ? weights->const_data_ptr() : nullptr,
                                   inv.start.const_data_ptr(), entries.const_data_ptr(), coef.mutable_data_ptr(),
                                   qcoef.mutable_data_ptr(), g_feat.mutable_data_ptr(), g_qf.mutable_data_ptr(),
                                   weights ? g_w.mutable_data_ptr() : nullptr, sr_cuda::dtype_of(feat), s, adapn, eps,
                                   wide, sr_cuda::stream_of(feat)),
      "graph_aggregate backward kernels");
  return {g_feat, g_qf, g_w};
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) {
  m.impl("_graph_aggregate_fwd", &graph_aggregate_fwd_cuda);
  m.impl("_graph_aggregate_bwd", &graph_aggregate_bwd_cuda);
}
