// CPU weight and bias gradients of conv3x3 (3x3, stride 1, zero padding 1) for float32, summed
// in an order fixed by the shapes alone, so they are bitwise the same at any thread count
// (docs/design.md, "Determinism"). ATen's convolution backward splits its pixel reduction
// by thread on some machines (1.4e-3 apart between 1 and 2 threads in issue 31).
//
// The map's rows (b, y) are cut into chunks whose size depends only on B, H and W. Each chunk
// sums its pixels' outer products g[p] (Cout) x patch[p] (9 Cin, the 3x3 window, padded
// zeros included: an inf gradient times a padded 0 is NaN, as the direct sum) into its own
// partial, in pixel order; the partials are then added in chunk order.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include "cpu/clones.h"
#include "cpu/dispatch.h"
#include "cpu/simd.h"

namespace {

using sr_simd::f32x8;
using sr_simd::load8;
using sr_simd::store8;

#define SR_INLINE inline __attribute__((always_inline))

constexpr int kBlock = 64;  // pixels whose patches are gathered at once (64 x 9 Cin floats, in L2)
constexpr int kRows = 4;    // output channels per micro-kernel pass

struct Shape {
  int64_t B, H, W, Cin, Cout;
  int64_t K, KP, CoutP;  // K = 9 Cin, KP: K rounded up to 8; CoutP: Cout rounded up to kRows
};

// acc[co][k] += sum over the n pixels of g[p][co] * patch[p][k], for kRows channels and 8 NV
// columns at a time, the pixels in order.
template <int NV>
SR_INLINE void panel(const float* G, const float* X, float* acc, int n, int64_t co, int64_t k, const Shape& s) {
  f32x8 a[kRows][NV];
  for (int r = 0; r < kRows; ++r)
    for (int v = 0; v < NV; ++v) a[r][v] = load8(acc + (co + r) * s.KP + k + 8 * v);
  for (int p = 0; p < n; ++p) {
    f32x8 xv[NV];
    for (int v = 0; v < NV; ++v) xv[v] = load8(X + p * s.KP + k + 8 * v);
    for (int r = 0; r < kRows; ++r) {
      const float gr = G[p * s.CoutP + co + r];
      const f32x8 gs = {gr, gr, gr, gr, gr, gr, gr, gr};
      for (int v = 0; v < NV; ++v) a[r][v] += gs * xv[v];
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int v = 0; v < NV; ++v) store8(acc + (co + r) * s.KP + k + 8 * v, a[r][v]);
}

// One chunk, rows [r0, r1) of the B*H map rows: its partial acc (CoutP x KP) and bias sums.
SR_CPU_CLONES_FMA void chunk(const float* x, const float* g, int64_t r0, int64_t r1, const Shape& s, float* acc,
                             float* bacc) {
  std::vector<float> X(kBlock * s.KP, 0.0f), G(kBlock * s.CoutP, 0.0f);
  const int64_t first = r0 * s.W, last = r1 * s.W;  // pixels, numbered (b * H + y) * W + x
  for (int64_t p0 = first; p0 < last; p0 += kBlock) {
    const int n = int(std::min<int64_t>(kBlock, last - p0));
    for (int p = 0; p < n; ++p) {
      const int64_t pix = p0 + p, xx = pix % s.W, row = pix / s.W, y = row % s.H, b = row / s.H;
      float* dst = X.data() + p * s.KP;
      for (int t = 0; t < 9; ++t) {
        const int64_t yy = y + t / 3 - 1, xs = xx + t % 3 - 1;
        if (yy >= 0 && yy < s.H && xs >= 0 && xs < s.W)
          std::copy_n(x + ((b * s.H + yy) * s.W + xs) * s.Cin, s.Cin, dst + t * s.Cin);
        else
          std::fill_n(dst + t * s.Cin, s.Cin, 0.0f);
      }
      std::copy_n(g + pix * s.Cout, s.Cout, G.data() + p * s.CoutP);
      for (int64_t co = 0; co < s.Cout; ++co) bacc[co] += g[pix * s.Cout + co];
    }
    for (int64_t co = 0; co < s.CoutP; co += kRows) {
      int64_t k = 0;
      for (; k + 24 <= s.KP; k += 24) panel<3>(G.data(), X.data(), acc, n, co, k, s);
      for (; k < s.KP; k += 8) panel<1>(G.data(), X.data(), acc, n, co, k, s);
    }
  }
}

void check(const at::Tensor& grad, const at::Tensor& x) {
  sr_cpu::check_cpu_float(grad, "grad");
  sr_cpu::check_cpu_float(x, "x");
  TORCH_CHECK_TYPE(grad.scalar_type() == at::kFloat && x.scalar_type() == at::kFloat,
                   "the CPU conv3x3 backward kernel takes float32 grad and x, got ",
                   sr_check::dtype_name(grad.scalar_type()), " and ", sr_check::dtype_name(x.scalar_type()));
  sr_check::dims(x, "x", 4, "(B, Cin, H, W)");
  sr_check::dims(grad, "grad", 4, "(B, Cout, H, W)");
  SR_CHECK_SHAPE(grad.size(0) == x.size(0) && grad.size(2) == x.size(2) && grad.size(3) == x.size(3), grad, "grad",
                 "(B, Cout, H, W) with x's B, H and W");
}

// grad (B, Cout, H, W), x (B, Cin, H, W), float32, any layout -> (grad_weight (Cout, Cin, 3, 3),
// grad_bias (Cout,)).
std::tuple<at::Tensor, at::Tensor> conv3x3_bwd_weight_cpu(const at::Tensor& grad_in, const at::Tensor& x_in) {
  check(grad_in, x_in);
  Shape s{x_in.size(0), x_in.size(2), x_in.size(3), x_in.size(1), grad_in.size(1), 0, 0, 0};
  s.K = 9 * s.Cin;
  s.KP = (s.K + 7) / 8 * 8;
  s.CoutP = (s.Cout + kRows - 1) / kRows * kRows;
  at::Tensor gw = at::zeros({s.Cout, s.Cin, 3, 3}, x_in.options());
  at::Tensor gb = at::zeros({s.Cout}, x_in.options());
  const int64_t rows = s.B * s.H;
  if (rows * s.W == 0 || s.Cout == 0) return {gw, gb};
  const at::Tensor x = x_in.contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor g = grad_in.contiguous(at::MemoryFormat::ChannelsLast);
  // Chunks of at least 2048 pixels (the partial's cost is amortised), at most 64 of them and
  // at most 32 MiB of partials (wide convolutions); all from the shapes, never the thread count.
  const int64_t most = std::clamp<int64_t>((int64_t(8) << 20) / std::max<int64_t>(1, s.CoutP * s.KP), 1, 64);
  const int64_t per = std::max((2048 + s.W - 1) / s.W, (rows + most - 1) / most);
  const int64_t chunks = (rows + per - 1) / per;
  std::vector<float> acc(chunks * s.CoutP * s.KP, 0.0f), bacc(chunks * s.Cout, 0.0f);
  const float* xp = x.const_data_ptr<float>();
  const float* gp = g.const_data_ptr<float>();
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      chunk(xp, gp, c * per, std::min(rows, (c + 1) * per), s, acc.data() + c * s.CoutP * s.KP,
            bacc.data() + c * s.Cout);
  });
  float* w = gw.mutable_data_ptr<float>();
  at::parallel_for(0, s.Cout, 1, [&](int64_t o0, int64_t o1) {
    for (int64_t co = o0; co < o1; ++co)
      for (int64_t k = 0; k < s.K; ++k) {
        float sum = 0.0f;
        for (int64_t c = 0; c < chunks; ++c) sum += acc[(c * s.CoutP + co) * s.KP + k];
        w[(co * s.Cin + k % s.Cin) * 9 + k / s.Cin] = sum;  // k = tap * Cin + ci
      }
  });
  float* bp = gb.mutable_data_ptr<float>();
  for (int64_t co = 0; co < s.Cout; ++co) {
    float sum = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) sum += bacc[c * s.Cout + co];
    bp[co] = sum;
  }
  return {gw, gb};
}

// GELU (grad undefined) or grad * GELU'(z), for conv3x3_layernorm2d's backward: ATen's
// vectorised GELU takes a scalar path on each thread's tail, so its bits depend on the thread
// count. Here every value goes through the same eight-lane code at positions fixed by the size
// alone. GELU'(z) = Phi(z) + z phi(z), Phi by gelu8's erf, so h matches the forward's GELU.
SR_CPU_CLONES_FMA void gelu_vec(const float* z, const float* g, float* out, int64_t v0, int64_t v1, int64_t n) {
  for (int64_t v = v0; v < v1; ++v) {
    const int64_t i = 8 * v, lanes = std::min<int64_t>(8, n - i);
    f32x8 zv{}, gv{};
    for (int64_t l = 0; l < lanes; ++l) zv[l] = z[i + l];
    if (g)
      for (int64_t l = 0; l < lanes; ++l) gv[l] = g[i + l];
    f32x8 r;
    if (!g) {
      r = sr_simd::gelu8(zv);
    } else {
      f32x8 e;
      for (int l = 0; l < 8; ++l) e[l] = std::exp(-0.5f * zv[l] * zv[l]);
      const f32x8 cdf = 0.5f * (1.0f + sr_simd::erf8(zv * 0.70710678118654752f));
      r = gv * (cdf + zv * e * 0.39894228040143268f);
    }
    for (int64_t l = 0; l < lanes; ++l) out[i + l] = r[l];
  }
}

at::Tensor conv3x3_gelu_cpu(const at::Tensor& z_in, const std::optional<at::Tensor>& grad_in) {
  sr_cpu::check_cpu_float(z_in, "z");
  TORCH_CHECK_TYPE(z_in.scalar_type() == at::kFloat, "the CPU conv3x3 GELU kernel takes float32 z, got ",
                   sr_check::dtype_name(z_in.scalar_type()));
  const at::MemoryFormat fmt = z_in.suggest_memory_format();
  const at::Tensor z = z_in.contiguous(fmt);
  at::Tensor g;
  if (grad_in.has_value() && grad_in->defined()) {
    sr_cpu::check_cpu_float(*grad_in, "grad");
    sr_check::same_dtype(*grad_in, "grad", z_in, "z");
    sr_check::shape_like(*grad_in, "grad", z_in.sizes(), "z");
    g = grad_in->contiguous(fmt);
  }
  at::Tensor out = at::empty_like(z, z.options().memory_format(fmt));
  const int64_t n = z.numel(), vecs = (n + 7) / 8;
  const float* zp = z.const_data_ptr<float>();
  const float* gp = g.defined() ? g.const_data_ptr<float>() : nullptr;
  float* op = out.mutable_data_ptr<float>();
  at::parallel_for(0, vecs, 2048, [&](int64_t v0, int64_t v1) { gelu_vec(zp, gp, op, v0, v1, n); });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(sr_ops, m) {
  // grad (B, Cout, H, W), x (B, Cin, H, W), float32 -> (grad_weight, grad_bias) of conv3x3.
  m.def("_conv3x3_bwd_weight(Tensor grad, Tensor x) -> (Tensor, Tensor)");
  // gelu(z) without grad, else grad * gelu'(z); float32, any shape; the same bits at any thread count.
  m.def("_conv3x3_gelu(Tensor z, Tensor? grad=None) -> Tensor");
}

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) {
  m.impl("_conv3x3_bwd_weight", &conv3x3_bwd_weight_cpu);
  m.impl("_conv3x3_gelu", &conv3x3_gelu_cpu);
}

// Meta tensors: csrc/cpu/meta_reject.cpp.
