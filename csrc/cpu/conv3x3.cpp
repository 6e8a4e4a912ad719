// CPU forward of conv3x3 (a 3x3 convolution, stride 1, zero padding 1, with bias) for
// float32 channels-last maps, by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray,
// "Fast Algorithms for Convolutional Neural Networks", 2016): each 2x2 block of outputs
// ("tile") is A^T [ (G g G^T) . (B^T d B) ] A over its 4x4 input window d, so the channel
// mixing is 16 products per tile instead of 36, 2.25x fewer multiplies than the direct
// convolution oneDNN runs on AVX2 machines (which has no Winograd there). That matters for
// RT4KSR, whose 24-channel 3x3 convolutions are ~3/4 of its CPU time at ~80% of the FMA peak.
//
// One job is a run of kTiles tiles along one tile row: their 16 transformed input planes
// (B^T d B, per input channel) go to a per-thread buffer V, 16 small GEMMs
// M[e] = V[e] (kTiles x Cin) . U[e] (Cin x Cout) run from L1/L2, and the output transform
// adds the bias and writes the 2x2 outputs. Nothing tile-sized ever reaches memory.
// The weights' transform U = G g G^T is computed once per call, in double.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "cpu/clones.h"
#include "cpu/dispatch.h"
#include "cpu/simd.h"

namespace {

using sr_simd::f32x8;
using sr_simd::load8;
using sr_simd::store8;

// The helpers are inlined into the AVX2/FMA clones below (an out-of-line copy would be
// built for the baseline ISA, ~10x slower here).
#define SR_INLINE inline __attribute__((always_inline))

constexpr int kTiles = 32;  // GEMM rows per job: enough to amortise U's loads, V and M stay in L2
constexpr int kRows = 4;    // rows of the register-blocked GEMM micro-kernel

struct Dims {
  int64_t B, H, W, Cin, Cout, CoutP;  // CoutP: Cout rounded up to 8 (U's and M's row length)
  int64_t TH, TW, runs;               // tile rows, tiles per row, jobs per tile row
};

// U[e][ci][co] = (G g G^T)[e] for g = weight[co, ci], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1];
// the padded columns co >= Cout stay zero.
std::vector<float> transform_weights(const float* w, const Dims& d) {
  std::vector<float> U(16 * d.Cin * d.CoutP, 0.0f);
  for (int64_t co = 0; co < d.Cout; ++co) {
    for (int64_t ci = 0; ci < d.Cin; ++ci) {
      const float* g = w + (co * d.Cin + ci) * 9;
      double t[4][3];  // G g
      for (int j = 0; j < 3; ++j) {
        const double g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
        t[0][j] = g0;
        t[1][j] = 0.5 * (g0 + g1 + g2);
        t[2][j] = 0.5 * (g0 - g1 + g2);
        t[3][j] = g2;
      }
      for (int i = 0; i < 4; ++i) {  // (G g) G^T
        const double u[4] = {t[i][0], 0.5 * (t[i][0] + t[i][1] + t[i][2]), 0.5 * (t[i][0] - t[i][1] + t[i][2]),
                             t[i][2]};
        for (int j = 0; j < 4; ++j) U[((i * 4 + j) * d.Cin + ci) * d.CoutP + co] = float(u[j]);
      }
    }
  }
  return U;
}

// One 4x4 window's B^T d B, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], for a vector of
// channels (Vec = f32x8) or one channel (Vec = float).
template <typename Vec>
SR_INLINE void input_transform(Vec d[4][4]) {
  for (int j = 0; j < 4; ++j) {
    const Vec a = d[0][j], b = d[1][j], c = d[2][j], e = d[3][j];
    d[0][j] = a - c;
    d[1][j] = b + c;
    d[2][j] = c - b;
    d[3][j] = b - e;
  }
  for (int i = 0; i < 4; ++i) {
    const Vec a = d[i][0], b = d[i][1], c = d[i][2], e = d[i][3];
    d[i][0] = a - c;
    d[i][1] = b + c;
    d[i][2] = c - b;
    d[i][3] = b - e;
  }
}

template <typename Vec>
SR_INLINE Vec load_vec(const float* p) {
  if constexpr (sizeof(Vec) == sizeof(float))
    return *p;
  else
    return load8(p);
}

// V[e][t][ci] for the n tiles (ty, tx0 + t) of image b; rows t >= n are zeroed so the
// GEMM reads finite values (their results are never stored).
template <typename Vec, int Step>
SR_INLINE void input_channels(const float* const rows[4], const int64_t cols[4], float* V, int t, int64_t c0,
                              int64_t c1, int64_t Cin) {
  for (int64_t c = c0; c + Step <= c1; c += Step) {
    Vec d[4][4];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) d[i][j] = (rows[i] && cols[j] >= 0) ? load_vec<Vec>(rows[i] + cols[j] + c) : Vec{};
    input_transform(d);
    for (int e = 0; e < 16; ++e) {
      float* dst = V + (int64_t(e) * kTiles + t) * Cin + c;
      if constexpr (Step == 1)
        *dst = d[e / 4][e % 4];
      else
        store8(dst, d[e / 4][e % 4]);
    }
  }
}

SR_CPU_CLONES_FMA void input_tiles(const float* x, float* V, const Dims& d, int64_t b, int64_t ty, int64_t tx0, int n) {
  const int64_t vec_end = d.Cin / 8 * 8;
  for (int t = 0; t < n; ++t) {
    const float* rows[4];
    int64_t cols[4];
    for (int i = 0; i < 4; ++i) {
      const int64_t y = 2 * ty - 1 + i, xx = 2 * (tx0 + t) - 1 + i;
      rows[i] = (y >= 0 && y < d.H) ? x + (b * d.H + y) * d.W * d.Cin : nullptr;
      cols[i] = (xx >= 0 && xx < d.W) ? xx * d.Cin : -1;
    }
    input_channels<f32x8, 8>(rows, cols, V, t, 0, vec_end, d.Cin);
    input_channels<float, 1>(rows, cols, V, t, vec_end, d.Cin, d.Cin);
  }
  for (int e = 0; e < 16; ++e)
    std::fill(V + (int64_t(e) * kTiles + n) * d.Cin, V + (int64_t(e) + 1) * kTiles * d.Cin, 0.0f);
}

// M[t][co0 : co0 + 8 NV] for all kTiles rows, kRows at a time (kRows x NV accumulators).
template <int NV>
SR_INLINE void gemm_panel(const float* Ve, const float* Ue, float* Me, int64_t Cin, int64_t CoutP) {
  for (int t = 0; t < kTiles; t += kRows) {
    f32x8 acc[kRows][NV];
    for (int r = 0; r < kRows; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = f32x8{};
    const float* a = Ve + int64_t(t) * Cin;
    for (int64_t k = 0; k < Cin; ++k) {
      f32x8 u[NV];
      for (int v = 0; v < NV; ++v) u[v] = load8(Ue + k * CoutP + 8 * v);
      for (int r = 0; r < kRows; ++r) {
        const float ar = a[r * Cin + k];
        const f32x8 s = {ar, ar, ar, ar, ar, ar, ar, ar};  // one vbroadcastss (splat8's + 0 is an add)
        for (int v = 0; v < NV; ++v) acc[r][v] += s * u[v];
      }
    }
    for (int r = 0; r < kRows; ++r)
      for (int v = 0; v < NV; ++v) store8(Me + int64_t(t + r) * CoutP + 8 * v, acc[r][v]);
  }
}

SR_CPU_CLONES_FMA void tile_gemms(const float* V, const float* U, float* M, const Dims& d) {
  for (int e = 0; e < 16; ++e) {
    const float* Ve = V + int64_t(e) * kTiles * d.Cin;
    const float* Ue = U + int64_t(e) * d.Cin * d.CoutP;
    float* Me = M + int64_t(e) * kTiles * d.CoutP;
    int64_t co = 0;
    for (; co + 24 <= d.CoutP; co += 24) gemm_panel<3>(Ve, Ue + co, Me + co, d.Cin, d.CoutP);
    if (d.CoutP - co == 16)
      gemm_panel<2>(Ve, Ue + co, Me + co, d.Cin, d.CoutP);
    else if (d.CoutP - co == 8)
      gemm_panel<1>(Ve, Ue + co, Me + co, d.Cin, d.CoutP);
  }
}

// r[i][j] = (A^T m A)[i][j] + bias for channels co .. co + 7 of tile t, A^T = [1 1 1 0; 0 1 -1 -1];
// the lanes past Cout come out 0 (U's and the bias's padding, to CoutP, are zero).
SR_INLINE void tile_outputs(const float* M, const float* bias, int t, int64_t co, const Dims& d, f32x8 r[2][2]) {
  f32x8 m[4][4];
  for (int e = 0; e < 16; ++e) m[e / 4][e % 4] = load8(M + (int64_t(e) * kTiles + t) * d.CoutP + co);
  f32x8 s[2][4];
  for (int j = 0; j < 4; ++j) {
    s[0][j] = m[0][j] + m[1][j] + m[2][j];
    s[1][j] = m[1][j] - m[2][j] - m[3][j];
  }
  const f32x8 bv = load8(bias + co);
  for (int i = 0; i < 2; ++i) {
    r[i][0] = s[i][0] + s[i][1] + s[i][2] + bv;
    r[i][1] = s[i][1] - s[i][2] - s[i][3] + bv;
  }
}

SR_INLINE void store_lanes(float* dst, f32x8 v, int64_t lanes) {
  if (lanes == 8)
    store8(dst, v);
  else
    for (int64_t l = 0; l < lanes; ++l) dst[l] = v[l];
}

// The 2x2 outputs of tile t's pixels inside the map (odd H or W leave the last tile half
// outside), or nullptr.
SR_INLINE void tile_pixels(float* y, const Dims& d, int64_t b, int64_t ty, int64_t tx, float* out[4]) {
  for (int p = 0; p < 4; ++p) {
    const int64_t yy = 2 * ty + p / 2, xx = 2 * tx + p % 2;
    out[p] = (yy < d.H && xx < d.W) ? y + ((b * d.H + yy) * d.W + xx) * d.Cout : nullptr;
  }
}

SR_CPU_CLONES_FMA void output_tiles(const float* M, const float* bias, float* y, const Dims& d, int64_t b, int64_t ty,
                                    int64_t tx0, int n) {
  for (int t = 0; t < n; ++t) {
    float* out[4];
    tile_pixels(y, d, b, ty, tx0 + t, out);
    for (int64_t co = 0; co < d.CoutP; co += 8) {
      f32x8 r[2][2];
      tile_outputs(M, bias, t, co, d, r);
      for (int p = 0; p < 4; ++p)
        if (out[p]) store_lanes(out[p] + co, r[p / 2][p % 2], std::min<int64_t>(8, d.Cout - co));
    }
  }
}

// conv3x3_layernorm2d's epilogue: each output pixel's Cout values (after GELU when gelu)
// normalised over the channels, as layernorm2d; the convolution's own output is never written.
// weight and bias padded to CoutP, as the convolution's bias.
struct Norm {
  const float *weight, *bias;
  float eps;
  bool gelu;
};

SR_CPU_CLONES_FMA void output_tiles_norm(const float* M, const float* bias, float* y, const Dims& d, int64_t b,
                                         int64_t ty, int64_t tx0, int n, const Norm& nm, float* P) {
  // 1 on the last vector's lanes below Cout, 0 past it: the deviations are summed with the
  // padded lanes exactly 0. Subtracting their (0 - mean)^2 afterwards instead cancels in float32
  // when the mean is large against the spread (a 1e3 mean over a spread of 1 lost everything).
  f32x8 tail{};
  for (int64_t l = 0; l < 8; ++l) tail[l] = (d.CoutP - 8 + l < d.Cout) ? 1.0f : 0.0f;
  const int64_t last = d.CoutP - 8;
  for (int t = 0; t < n; ++t) {
    float* out[4];
    tile_pixels(y, d, b, ty, tx0 + t, out);
    for (int64_t co = 0; co < d.CoutP; co += 8) {  // P[p][co]: the tile's four pixels
      f32x8 r[2][2];
      tile_outputs(M, bias, t, co, d, r);
      for (int p = 0; p < 4; ++p)
        store8(P + p * d.CoutP + co, nm.gelu ? sr_simd::gelu8(r[p / 2][p % 2]) : r[p / 2][p % 2]);
    }
    for (int p = 0; p < 4; ++p) {
      if (!out[p]) continue;
      float* v = P + p * d.CoutP;
      // Shifted sums, as layernorm2d (csrc/kernels/layernorm2d.h, ln2d_pixel_stats): v - v[0] is
      // exact for values close together, so the mean's rounding (sum / Cout at a mean 1e4x the
      // spread) does not reach the outputs, and equal values have zero variance exactly.
      const f32x8 sv = sr_simd::splat8(v[0]);
      f32x8 acc{};
      for (int64_t co = 0; co < last; co += 8) acc += load8(v + co) - sv;
      acc += (load8(v + last) - sv) * tail;
      const float dm = sr_simd::hsum8(acc) / float(d.Cout);
      const f32x8 mv = sr_simd::splat8(dm);
      acc = f32x8{};
      for (int64_t co = 0; co < last; co += 8) {
        const f32x8 c = (load8(v + co) - sv) - mv;
        acc += c * c;
      }
      const f32x8 c = ((load8(v + last) - sv) - mv) * tail;
      acc += c * c;
      // No clamp: the sum of squares is >= 0, and a zero variance with eps = 0 must give NaN
      // (0 * inf) as the reference does, not norm_bias.
      const float var = sr_simd::hsum8(acc) / float(d.Cout);
      const float rs = 1.0f / std::sqrt(var + nm.eps);
      const f32x8 rv = sr_simd::splat8(rs);
      for (int64_t co = 0; co < d.CoutP; co += 8) {
        const int64_t lanes = std::min<int64_t>(8, d.Cout - co);
        store_lanes(out[p] + co, ((load8(v + co) - sv) - mv) * rv * load8(nm.weight + co) + load8(nm.bias + co), lanes);
      }
    }
  }
}

void run(const float* x, const float* U, const float* bias, float* y, const Dims& d, const Norm* norm) {
  const int64_t jobs = d.B * d.TH * d.runs;
  const int64_t work = d.B * d.H * d.W * d.Cin * d.Cout;
  at::parallel_for(0, jobs, sr_cpu::worth_threads(work / 64) ? 1 : jobs, [&](int64_t j0, int64_t j1) {
    std::vector<float> V(16 * kTiles * d.Cin), M(16 * kTiles * d.CoutP), P(4 * d.CoutP);
    for (int64_t job = j0; job < j1; ++job) {
      const int64_t run_i = job % d.runs, ty = (job / d.runs) % d.TH, b = job / (d.runs * d.TH);
      const int64_t tx0 = run_i * kTiles;
      const int n = int(std::min<int64_t>(kTiles, d.TW - tx0));
      input_tiles(x, V.data(), d, b, ty, tx0, n);
      tile_gemms(V.data(), U, M.data(), d);
      if (norm)
        output_tiles_norm(M.data(), bias, y, d, b, ty, tx0, n, *norm, P.data());
      else
        output_tiles(M.data(), bias, y, d, b, ty, tx0, n);
    }
  });
}

void check_args(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  sr_cpu::check_cpu_float(x, "x");
  sr_cpu::check_cpu_float(w, "weight");
  sr_cpu::check_cpu_float(b, "bias");
  TORCH_CHECK_TYPE(x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat,
                   "the CPU conv3x3 kernel takes float32 x, weight and bias, got ",
                   sr_check::dtype_name(x.scalar_type()), ", ", sr_check::dtype_name(w.scalar_type()), ", ",
                   sr_check::dtype_name(b.scalar_type()));
  sr_check::dims(x, "x", 4, "(B, Cin, H, W)");
  sr_check::dims(w, "weight", 4, "(Cout, Cin, 3, 3)");
  TORCH_CHECK_VALUE(w.size(1) == x.size(1) && w.size(2) == 3 && w.size(3) == 3,
                    "weight must have shape (Cout, Cin, 3, 3) with Cin = x.shape[1] = ", x.size(1), ", got ",
                    sr_check::shape(w.sizes()));
  TORCH_CHECK_VALUE(b.dim() == 1 && b.size(0) == w.size(0), "bias must have shape (Cout,) = (", w.size(0), ",), got ",
                    sr_check::shape(b.sizes()));
}

// A (Cout,) vector zero-padded to n, so the epilogues load whole vectors.
std::vector<float> padded(const at::Tensor& t, int64_t n) {
  std::vector<float> out(n, 0.0f);
  const at::Tensor c = t.contiguous();
  std::copy_n(c.const_data_ptr<float>(), c.numel(), out.begin());
  return out;
}

// x (B, Cin, H, W) float32, any layout (read channels-last); -> (B, Cout, H, W) channels-last.
at::Tensor forward(const at::Tensor& x_in, const at::Tensor& w_in, const at::Tensor& b, const Norm* norm) {
  const at::Tensor x = x_in.contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor w = w_in.contiguous();
  Dims d{x.size(0), x.size(2), x.size(3), x.size(1), w.size(0), (w.size(0) + 7) / 8 * 8, 0, 0, 0};
  d.TH = (d.H + 1) / 2;
  d.TW = (d.W + 1) / 2;
  d.runs = (d.TW + kTiles - 1) / kTiles;
  at::Tensor y = at::empty({d.B, d.Cout, d.H, d.W}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (y.numel() == 0) return y;
  const std::vector<float> U = transform_weights(w.const_data_ptr<float>(), d);
  const std::vector<float> bias = padded(b, d.CoutP);
  run(x.const_data_ptr<float>(), U.data(), bias.data(), y.mutable_data_ptr<float>(), d, norm);
  return y;
}

at::Tensor conv3x3_fwd_cpu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  check_args(x, w, b);
  return forward(x, w, b, nullptr);
}

at::Tensor conv3x3_layernorm2d_fwd_cpu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                                       const at::Tensor& nw_in, const at::Tensor& nb_in, double eps, bool gelu) {
  check_args(x, w, b);
  TORCH_CHECK_VALUE(w.size(0) >= 1,
                    "weight must have at least one output channel (the norm needs Cout >= 1), got shape ",
                    sr_check::shape(w.sizes()));
  for (const auto& [t, name] : {std::pair{&nw_in, "norm_weight"}, std::pair{&nb_in, "norm_bias"}}) {
    TORCH_CHECK_TYPE(t->scalar_type() == at::kFloat, name, " must be float32 as x, got ",
                     sr_check::dtype_name(t->scalar_type()));
    TORCH_CHECK_VALUE(t->device().is_cpu() && t->dim() == 1 && t->size(0) == w.size(0), name,
                      " must be a CPU tensor of shape (Cout,) = (", w.size(0), ",), got ", sr_check::shape(t->sizes()));
  }
  TORCH_CHECK_VALUE(std::isfinite(eps) && eps >= 0, "eps must be a finite non-negative number, got ", eps);
  const int64_t coutp = (w.size(0) + 7) / 8 * 8;
  const std::vector<float> nw = padded(nw_in, coutp), nb = padded(nb_in, coutp);
  const Norm norm{nw.data(), nb.data(), float(eps), gelu};
  return forward(x, w, b, &norm);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(sr_ops, m) {
  // x (B, Cin, H, W), weight (Cout, Cin, 3, 3), bias (Cout,), float32; stride 1, padding 1.
  m.def("_conv3x3_fwd(Tensor x, Tensor weight, Tensor bias) -> Tensor");
  // layernorm2d(gelu(conv) if gelu else conv, norm_weight, norm_bias, eps), norm_* (Cout,).
  m.def(
      "_conv3x3_layernorm2d_fwd(Tensor x, Tensor weight, Tensor bias, Tensor norm_weight, Tensor norm_bias, float eps, "
      "bool gelu) -> Tensor");
}

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) {
  m.impl("_conv3x3_fwd", &conv3x3_fwd_cpu);
  m.impl("_conv3x3_layernorm2d_fwd", &conv3x3_layernorm2d_fwd_cpu);
}

// Meta tensors: csrc/cpu/meta_reject.cpp.
