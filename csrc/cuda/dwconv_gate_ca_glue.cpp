// Registers the dwconv_gate_ca CUDA launchers for CUDA tensors.
#include <torch/library.h>

#include <tuple>

#include "cuda/dwconv_gate_ca.cuh"
#include "cuda/glue.h"

namespace {

struct Dims {
  int64_t B, C, H, W, k, Cg;
};

Dims dims_from(const at::Tensor& x, const at::Tensor& dw, const at::Tensor& db,
               const at::Tensor& cw, const at::Tensor& cb, bool gate) {
  TORCH_CHECK(sr_cuda::is_kernel_device(x) && x.dim() == 4, "x must be a (B, C, H, W) CUDA tensor, got ", x.sizes());
  for (const auto* t : {&dw, &db, &cw, &cb})
    TORCH_CHECK(t->device() == x.device() && t->scalar_type() == x.scalar_type(),
                "weights must be on x's device with x's dtype");
  Dims d{x.size(0), x.size(1), x.size(2), x.size(3), 0, 0};
  TORCH_CHECK(dw.dim() == 4 && dw.size(0) == d.C && dw.size(1) == 1 && dw.size(2) == dw.size(3) &&
                  dw.size(2) % 2 == 1,
              "dw_weight must be (C, 1, k, k) with odd k, got ", dw.sizes());
  d.k = dw.size(2);
  TORCH_CHECK(!gate || d.C % 2 == 0, "C must be even with the gate, got ", d.C);
  d.Cg = gate ? d.C / 2 : d.C;
  TORCH_CHECK(db.dim() == 1 && db.size(0) == d.C, "dw_bias must be (C,)");
  TORCH_CHECK(cw.dim() == 4 && cw.size(0) == d.Cg && cw.size(1) == d.Cg && cw.size(2) == 1 &&
                  cw.size(3) == 1,
              "ca_weight must be (C', C', 1, 1), got ", cw.sizes());
  TORCH_CHECK(cb.dim() == 1 && cb.size(0) == d.Cg, "ca_bias must be (C',)");
  return d;
}

at::Tensor workspace(const at::Tensor& x, const Dims& d, bool gate, bool backward) {
  const int64_t bytes = sr_cuda::dwconv_gate_ca_workspace_bytes(sr_cuda::dtype_of(x), d.B, d.C,
                                                                 d.H, d.W, gate, backward);
  return at::empty({bytes}, x.options().dtype(at::kByte));
}

at::Tensor fwd_cuda(const at::Tensor& x_in, const at::Tensor& dw_in, const at::Tensor& db_in,
                    const at::Tensor& cw_in, const at::Tensor& cb_in, bool gate) {
  const Dims d = dims_from(x_in, dw_in, db_in, cw_in, cb_in, gate);
  const sr_cuda::DeviceGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), dw = dw_in.contiguous(), db = db_in.contiguous(),
                   cw = cw_in.contiguous(), cb = cb_in.contiguous();
  at::Tensor out = at::empty({d.B, d.Cg, d.H, d.W}, x.options());
  at::Tensor ws = workspace(x, d, gate, false);
  sr_cuda::check_status(
      sr_cuda::dwconv_gate_ca_fwd(x.const_data_ptr(), dw.const_data_ptr(), db.const_data_ptr(),
                                  cw.const_data_ptr(), cb.const_data_ptr(), out.mutable_data_ptr(),
                                  ws.mutable_data_ptr(), sr_cuda::dtype_of(x), d.B, d.C, d.H, d.W,
                                  d.k, gate, sr_cuda::stream_of(x)),
      "dwconv_gate_ca forward kernel");
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> bwd_cuda(
    const at::Tensor& grad_in, const at::Tensor& x_in, const at::Tensor& dw_in,
    const at::Tensor& db_in, const at::Tensor& cw_in, const at::Tensor& cb_in, bool gate) {
  const Dims d = dims_from(x_in, dw_in, db_in, cw_in, cb_in, gate);
  TORCH_CHECK(grad_in.device() == x_in.device() && grad_in.dim() == 4 && grad_in.size(0) == d.B &&
                  grad_in.size(1) == d.Cg && grad_in.size(2) == d.H && grad_in.size(3) == d.W,
              "grad_out must have the output's shape (B, C', H, W) on x's device");
  const sr_cuda::DeviceGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), dw = dw_in.contiguous(), db = db_in.contiguous(),
                   cw = cw_in.contiguous(), cb = cb_in.contiguous();
  const at::Tensor g = grad_in.to(x.scalar_type()).contiguous();
  at::Tensor dx = at::zeros_like(x), ddw = at::zeros_like(dw), ddb = at::zeros_like(db),
             dcw = at::zeros_like(cw), dcb = at::zeros_like(cb);
  at::Tensor ws = workspace(x, d, gate, true);
  sr_cuda::check_status(
      sr_cuda::dwconv_gate_ca_bwd(g.const_data_ptr(), x.const_data_ptr(), dw.const_data_ptr(),
                                  db.const_data_ptr(), cw.const_data_ptr(), cb.const_data_ptr(),
                                  dx.mutable_data_ptr(), ddw.mutable_data_ptr(),
                                  ddb.mutable_data_ptr(), dcw.mutable_data_ptr(),
                                  dcb.mutable_data_ptr(), ws.mutable_data_ptr(),
                                  sr_cuda::dtype_of(x), d.B, d.C, d.H, d.W, d.k, gate,
                                  sr_cuda::stream_of(x)),
      "dwconv_gate_ca backward kernel");
  return {dx, ddw, ddb, dcw, dcb};
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) {
  m.impl("_dwconv_gate_ca_fwd", &fwd_cuda);
  m.impl("_dwconv_gate_ca_bwd", &bwd_cuda);
}
