// CPU kernels for dwconv_gate_ca (see csrc/kernels/dwconv_gate_ca.h): OpenMP over
// (b, c') groups. A group computes its conv rows for the one or two input channels it
// needs, row by row (the rows stay in L1), so x is read once and u never exists as a
// full tensor; the attention scale is a second, light pass over the output.
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "checks/dwconv_gate_ca.h"
#include "cpu/dispatch.h"
#include "cpu/dwconv_gate_ca_nhwc.h"
#include "kernels/dwconv_gate_ca.h"

namespace {

// Pass 1 of both directions: the gated map of group (b, c') row by row, handed to f(h, y_row).
template <typename T, typename Acc, typename F>
void group_rows(const T* x, const T* dw, const T* db, const sr::DgcDims& d, int64_t b, int64_t c, Acc* r1, Acc* r2,
                F f) {
  const int64_t HW = sr::dgc_plane(d), kk = d.k * d.k, Cg = sr::dgc_out_channels(d);
  const T* x1 = x + (b * d.C + c) * HW;
  const T* x2 = x + (b * d.C + c + Cg) * HW;
  for (int64_t h = 0; h < d.H; ++h) {
    sr::dgc_conv_row<T, Acc>(x1, dw + c * kk, Acc(db[c]), d.H, d.W, d.k, h, r1);
    if (d.gate) {
      sr::dgc_conv_row<T, Acc>(x2, dw + (c + Cg) * kk, Acc(db[c + Cg]), d.H, d.W, d.k, h, r2);
      f(h, r1, r2);
    } else {
      f(h, r1, static_cast<Acc*>(nullptr));
    }
  }
}

template <typename T>
void fwd_impl(const T* x, const T* dw, const T* db, const T* cw, const T* cb, T* out, const sr::DgcDims d) {
  using Acc = at::opmath_type<T>;
  const int64_t G = sr::dgc_groups(d), Cg = sr::dgc_out_channels(d), HW = sr::dgc_plane(d);
  std::vector<Acc> s(G), a(G);
  const bool par = sr_cpu::worth_threads(d.B * d.C * HW);
#pragma omp parallel if (par)
  {
    std::vector<Acc> rows(2 * d.W);
#pragma omp for schedule(static)
    for (int64_t g = 0; g < G; ++g) {
      const int64_t b = g / Cg, c = g % Cg;
      T* o = out + g * HW;
      Acc total = Acc(0);
      group_rows<T, Acc>(x, dw, db, d, b, c, rows.data(), rows.data() + d.W, [&](int64_t h, Acc* r1, Acc* r2) {
        T* orow = o + h * d.W;
        Acc rs = Acc(0);
        if (r2 != nullptr) {
          for (int64_t w = 0; w < d.W; ++w) {
            const Acc y = r1[w] * r2[w];
            orow[w] = T(y);
            rs += y;
          }
        } else {
          for (int64_t w = 0; w < d.W; ++w) {
            orow[w] = T(r1[w]);
            rs += r1[w];
          }
        }
        total += rs;
      });
      s[g] = sr::dgc_mean<T, Acc>(total, dw, d, c);
    }
#pragma omp single
    for (int64_t g = 0; g < G; ++g) a[g] = sr::dgc_attention<T, Acc>(cw, cb, s.data() + g / Cg * Cg, Cg, g % Cg);
#pragma omp for schedule(static)
    for (int64_t g = 0; g < G; ++g) {
      T* o = out + g * HW;
      const Acc ag = a[g];
      for (int64_t e = 0; e < HW; ++e) o[e] = T(Acc(o[e]) * ag);
    }
  }
}

template <typename T>
void bwd_impl(const T* gout, const T* x, const T* dw, const T* db, const T* cw, const T* cb, T* dx, T* ddw, T* ddb,
              T* dcw, T* dcb, const sr::DgcDims d) {
  using Acc = at::opmath_type<T>;
  const int64_t G = sr::dgc_groups(d), Cg = sr::dgc_out_channels(d), HW = sr::dgc_plane(d);
  const int64_t kk = d.k * d.k, nch = d.gate ? 2 : 1;
  std::vector<Acc> s(G), ga(G), a(G), gs(G);
  std::vector<Acc> dwp(d.B * d.C * kk, Acc(0)), dbp(d.B * d.C, Acc(0));
  const bool par = sr_cpu::worth_threads(d.B * d.C * HW);
#pragma omp parallel if (par)
  {
    std::vector<Acc> rows(2 * d.W);
    // Pass 1: the pooled map s and ga = sum g * y per group.
#pragma omp for schedule(static)
    for (int64_t g = 0; g < G; ++g) {
      const int64_t b = g / Cg, c = g % Cg;
      const T* gp = gout + g * HW;
      Acc sy = Acc(0), sgy = Acc(0);
      group_rows<T, Acc>(x, dw, db, d, b, c, rows.data(), rows.data() + d.W, [&](int64_t h, Acc* r1, Acc* r2) {
        const T* grow = gp + h * d.W;
        Acc ry = Acc(0), rgy = Acc(0);
        for (int64_t w = 0; w < d.W; ++w) {
          const Acc y = r2 != nullptr ? r1[w] * r2[w] : r1[w];
          ry += y;
          rgy += Acc(grow[w]) * y;
        }
        sy += ry;
        sgy += rgy;
      });
      s[g] = sr::dgc_mean<T, Acc>(sy, dw, d, c);
      ga[g] = sgy;
    }
    // The attention's small dense part.
#pragma omp single
    {
      for (int64_t g = 0; g < G; ++g) {
        const int64_t b = g / Cg, c = g % Cg;
        a[g] = sr::dgc_attention<T, Acc>(cw, cb, s.data() + b * Cg, Cg, c);
        gs[g] = sr::dgc_pool_grad<T, Acc>(cw, ga.data() + b * Cg, Cg, c);
      }
      for (int64_t o = 0; o < Cg; ++o) {
        Acc sb = Acc(0);
        for (int64_t b = 0; b < d.B; ++b) sb += ga[b * Cg + o];
        dcb[o] = T(sb);
        for (int64_t i = 0; i < Cg; ++i) {
          Acc sw = Acc(0);
          for (int64_t b = 0; b < d.B; ++b) sw += ga[b * Cg + o] * s[b * Cg + i];
          dcw[o * Cg + i] = T(sw);
        }
      }
    }
    // Pass 2: gu planes of the group's channels, then their input and weight gradients.
    std::vector<Acc> gu(nch * HW), trow(d.W);
#pragma omp for schedule(static)
    for (int64_t g = 0; g < G; ++g) {
      const int64_t b = g / Cg, c = g % Cg;
      const T* gp = gout + g * HW;
      const Acc ag = a[g], gsg = gs[g] / Acc(HW);
      Acc* gu1 = gu.data();
      Acc* gu2 = gu.data() + (nch - 1) * HW;
      group_rows<T, Acc>(x, dw, db, d, b, c, rows.data(), rows.data() + d.W, [&](int64_t h, Acc* r1, Acc* r2) {
        const T* grow = gp + h * d.W;
        Acc* o1 = gu1 + h * d.W;
        if (r2 != nullptr) {
          Acc* o2 = gu2 + h * d.W;
          for (int64_t w = 0; w < d.W; ++w) {
            const Acc gy = Acc(grow[w]) * ag + gsg;
            o1[w] = gy * r2[w];
            o2[w] = gy * r1[w];
          }
        } else {
          for (int64_t w = 0; w < d.W; ++w) o1[w] = Acc(grow[w]) * ag + gsg;
        }
      });
      for (int64_t m = 0; m < nch; ++m) {
        const int64_t ch = c + m * Cg;
        const Acc* gup = gu.data() + m * HW;
        const T* xp = x + (b * d.C + ch) * HW;
        T* dxp = dx + (b * d.C + ch) * HW;
        Acc bsum = Acc(0);
        for (int64_t h = 0; h < d.H; ++h) {
          sr::dgc_conv_t_row<T, Acc>(gup, dw + ch * kk, d.H, d.W, d.k, h, trow.data());
          Acc rs = Acc(0);
          for (int64_t w = 0; w < d.W; ++w) {
            dxp[h * d.W + w] = T(trow[w]);
            rs += gup[h * d.W + w];
          }
          bsum += rs;
        }
        dbp[b * d.C + ch] = bsum;
        sr::dgc_weight_grad<T, Acc>(gup, xp, d.H, d.W, d.k, dwp.data() + (b * d.C + ch) * kk);
      }
    }
  }
  for (int64_t c = 0; c < d.C; ++c) {
    Acc sb = Acc(0);
    for (int64_t b = 0; b < d.B; ++b) sb += dbp[b * d.C + c];
    ddb[c] = T(sb);
    for (int64_t t = 0; t < kk; ++t) {
      Acc sw = Acc(0);
      for (int64_t b = 0; b < d.B; ++b) sw += dwp[(b * d.C + c) * kk + t];
      ddw[c * kk + t] = T(sw);
    }
  }
}

at::Tensor fwd_cpu(const at::Tensor& x_in, const at::Tensor& dw_in, const at::Tensor& db_in, const at::Tensor& cw_in,
                   const at::Tensor& cb_in, bool gate) {
  sr_cpu::check_cpu_float(x_in, "x");
  const auto d = sr_check::dgc_dims(x_in, dw_in, db_in, cw_in, cb_in, gate);
  if (x_in.scalar_type() == at::kHalf || x_in.scalar_type() == at::kBFloat16) {
    // float32 math rounded once at the end (docs/design.md): the kernels store the gated map
    // in the output before scaling it, which in a half type would round twice.
    const auto f = [](const at::Tensor& t) { return t.to(at::kFloat); };
    return fwd_cpu(f(x_in), f(dw_in), f(db_in), f(cw_in), f(cb_in), gate).to(x_in.scalar_type());
  }
  const at::Tensor dw = dw_in.contiguous(), db = db_in.contiguous(), cw = cw_in.contiguous(), cb = cb_in.contiguous();
  if (sr_cpu::channels_last(x_in)) {  // read in place, written channels-last (ops/dwconv_gate_ca.py's contract)
    at::Tensor out =
        at::empty({d.B, sr::dgc_out_channels(d), d.H, d.W}, x_in.options(), at::MemoryFormat::ChannelsLast);
    SR_DISPATCH_FLOATS(x_in.scalar_type(), "dwconv_gate_ca_fwd_cpu", [&] {
      sr_dgc_nhwc::forward<scalar_t>(x_in.const_data_ptr<scalar_t>(), dw.const_data_ptr<scalar_t>(),
                                     db.const_data_ptr<scalar_t>(), cw.const_data_ptr<scalar_t>(),
                                     cb.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), d);
    });
    return out;
  }
  const at::Tensor x = x_in.contiguous();
  at::Tensor out = at::empty({d.B, sr::dgc_out_channels(d), d.H, d.W}, x.options());
  if (out.numel() == 0) return out;
  SR_DISPATCH_FLOATS(x.scalar_type(), "dwconv_gate_ca_fwd_cpu", [&] {
    fwd_impl<scalar_t>(x.const_data_ptr<scalar_t>(), dw.const_data_ptr<scalar_t>(), db.const_data_ptr<scalar_t>(),
                       cw.const_data_ptr<scalar_t>(), cb.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                       d);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> bwd_cpu(
    const at::Tensor& grad_in, const at::Tensor& x_in, const at::Tensor& dw_in, const at::Tensor& db_in,
    const at::Tensor& cw_in, const at::Tensor& cb_in, bool gate) {
  sr_cpu::check_cpu_float(x_in, "x");
  const auto d = sr_check::dgc_backward_dims(grad_in, x_in, dw_in, db_in, cw_in, cb_in, gate);
  const at::Tensor x = x_in.contiguous(), dw = dw_in.contiguous(), db = db_in.contiguous(), cw = cw_in.contiguous(),
                   cb = cb_in.contiguous();
  const at::Tensor g = grad_in.to(x.scalar_type()).contiguous();
  at::Tensor dx = at::empty_like(x), ddw = at::zeros_like(dw), ddb = at::zeros_like(db), dcw = at::zeros_like(cw),
             dcb = at::zeros_like(cb);
  if (x.numel() == 0) return {dx, ddw, ddb, dcw, dcb};
  SR_DISPATCH_FLOATS(x.scalar_type(), "dwconv_gate_ca_bwd_cpu", [&] {
    bwd_impl<scalar_t>(g.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(), dw.const_data_ptr<scalar_t>(),
                       db.const_data_ptr<scalar_t>(), cw.const_data_ptr<scalar_t>(), cb.const_data_ptr<scalar_t>(),
                       dx.mutable_data_ptr<scalar_t>(), ddw.mutable_data_ptr<scalar_t>(),
                       ddb.mutable_data_ptr<scalar_t>(), dcw.mutable_data_ptr<scalar_t>(),
                       dcb.mutable_data_ptr<scalar_t>(), d);
  });
  return {dx, ddw, ddb, dcw, dcb};
}

}  // namespace

// The schemas of the kernels below (sr_ops/ops/<op>.py calls them; the CUDA glue registers
// the same names for CUDA tensors).
TORCH_LIBRARY_FRAGMENT(sr_ops, m) {
  // x (B, C, H, W), dw_weight (C, 1, k, k), dw_bias (C,), ca_weight (C', C', 1, 1), ca_bias (C',),
  // one dtype; C' = C/2 with the gate. backward -> grads of x and the four weights.
  m.def(
      "_dwconv_gate_ca_fwd(Tensor x, Tensor dw_weight, Tensor dw_bias, Tensor ca_weight, Tensor ca_bias, "
      "bool gate) -> Tensor");
  m.def(
      "_dwconv_gate_ca_bwd(Tensor grad_out, Tensor x, Tensor dw_weight, Tensor dw_bias, Tensor ca_weight, "
      "Tensor ca_bias, bool gate) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) {
  m.impl("_dwconv_gate_ca_fwd", &fwd_cpu);
  m.impl("_dwconv_gate_ca_bwd", &bwd_cpu);
}
