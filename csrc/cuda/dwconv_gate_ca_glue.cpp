// Registers the dwconv_gate_ca CUDA launchers for CUDA tensors.
#include <torch/library.h>

#include <tuple>

#include "checks/dwconv_gate_ca.h"
#include "cuda/dwconv_gate_ca.cuh"
#include "cuda/glue.h"

namespace {

using Dims = sr::DgcDims;

at::Tensor workspace(const at::Tensor& x, const Dims& d, bool backward) {
  const int64_t bytes =
      sr_cuda::dwconv_gate_ca_workspace_bytes(sr_cuda::dtype_of(x), d.B, d.C, d.H, d.W, d.k, d.gate, backward);
  return at::empty({bytes}, x.options().dtype(at::kByte));
}

at::Tensor fwd_cuda(const at::Tensor& x_in, const at::Tensor& dw_in, const at::Tensor& db_in, const at::Tensor& cw_in,
                    const at::Tensor& cb_in, bool gate) {
  sr_cuda::check_device(x_in, "x");
  const Dims d = sr_check::dgc_dims(x_in, dw_in, db_in, cw_in, cb_in, gate);
  const sr_cuda::DeviceGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), dw = dw_in.contiguous(), db = db_in.contiguous(), cw = cw_in.contiguous(),
                   cb = cb_in.contiguous();
  at::Tensor out = at::empty({d.B, sr::dgc_out_channels(d), d.H, d.W}, x.options());
  if (out.numel() == 0) return out;  // B, H or W = 0: an empty launch grid is a CUDA error
  at::Tensor ws = workspace(x, d, false);
  sr_cuda::check_status(
      sr_cuda::dwconv_gate_ca_fwd(x.const_data_ptr(), dw.const_data_ptr(), db.const_data_ptr(), cw.const_data_ptr(),
                                  cb.const_data_ptr(), out.mutable_data_ptr(), ws.mutable_data_ptr(),
                                  sr_cuda::dtype_of(x), d.B, d.C, d.H, d.W, d.k, gate, sr_cuda::stream_of(x)),
      "dwconv_gate_ca forward kernel");
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> bwd_cuda(
    const at::Tensor& grad_in, const at::Tensor& x_in, const at::Tensor& dw_in, const at::Tensor& db_in,
    const at::Tensor& cw_in, const at::Tensor& cb_in, bool gate) {
  sr_cuda::check_device(x_in, "x");
  const Dims d = sr_check::dgc_backward_dims(grad_in, x_in, dw_in, db_in, cw_in, cb_in, gate);
  const sr_cuda::DeviceGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), dw = dw_in.contiguous(), db = db_in.contiguous(), cw = cw_in.contiguous(),
                   cb = cb_in.contiguous();
  const at::Tensor g = grad_in.to(x.scalar_type()).contiguous();
  at::Tensor dx = at::zeros_like(x), ddw = at::zeros_like(dw), ddb = at::zeros_like(db), dcw = at::zeros_like(cw),
             dcb = at::zeros_like(cb);
  if (x.numel() == 0) return {dx, ddw, ddb, dcw, dcb};
  at::Tensor ws = workspace(x, d, true);
  sr_cuda::check_status(
      sr_cuda::dwconv_gate_ca_bwd(g.const_data_ptr(), x.const_data_ptr(), dw.const_data_ptr(), db.const_data_ptr(),
                                  cw.const_data_ptr(), cb.const_data_ptr(), dx.mutable_data_ptr(),
                                  ddw.mutable_data_ptr(), ddb.mutable_data_ptr(), dcw.mutable_data_ptr(),
                                  dcb.mutable_data_ptr(), ws.mutable_data_ptr(), sr_cuda::dtype_of(x), d.B, d.C, d.H,
                                  d.W, d.k, gate, sr_cuda::stream_of(x)),
      "dwconv_gate_ca backward kernel");
  return {dx, ddw, ddb, dcw, dcb};
}

}  // namespace

SR_CUDA_LIBRARY_IMPL(m) {
  m.impl("_dwconv_gate_ca_fwd", &fwd_cuda);
  m.impl("_dwconv_gate_ca_bwd", &bwd_cuda);
}
