// dwconv_gate_ca CUDA kernels. Forward: a (pixel chunk, group) grid of blocks computes the
// gated map (each pixel's k*k taps read through L1/L2), writes it and reduces its chunk's sum
// to a per-block partial; one thread per group adds a group's partials in order and one per
// (b, o) forms the attention scale; an elementwise pass applies it. Backward: the same pooled
// pass (with sum g*y), the small dense part, an elementwise pass writing the conv-output
// gradient gu into the workspace, the transposed conv per pixel, and the weight gradients as
// (pixel chunk, channel, image) partials added in order by a last small kernel (no atomics,
// deterministic; two waves of blocks at NAFNet's sizes). The streaming passes move 16 bytes per
// access when H * W is a multiple of 16 bytes of T and the tensors are 16-byte aligned; every
// index is 32-bit below 2^31 elements. Per-element math from csrc/kernels/dwconv_gate_ca.h.
#include "cuda/common.cuh"
#include "cuda/dwconv_gate_ca.cuh"
#include "kernels/convert.h"
#include "kernels/dwconv_gate_ca.h"

namespace sr_cuda {
namespace {

constexpr int kThreads = 256;

template <typename Acc>
__device__ Acc block_sum(Acc v, Acc* shm) {
  shm[threadIdx.x] = v;
  __syncthreads();
  for (int o = blockDim.x / 2; o > 0; o >>= 1) {
    if (int(threadIdx.x) < o) shm[threadIdx.x] += shm[threadIdx.x + o];
    __syncthreads();
  }
  const Acc r = shm[0];
  __syncthreads();
  return r;
}

// The gated value y at (h, w) of group (b, c) and its two conv outputs u1, u2 (u2 = 1 without
// the gate); xa, xb: the planes of input channels c and c + C'.
template <typename T, typename Acc>
__device__ __forceinline__ Acc gated_at(const T* xa, const T* xb, const T* dw, const T* db, const sr::DgcDims& d, int c,
                                        int h, int w, Acc* u1, Acc* u2) {
  const int kk = int(d.k * d.k), Cg = int(sr::dgc_out_channels(d));
  *u1 = sr::dgc_conv_at<T, Acc>(xa, dw + c * kk, sr_cast<Acc>(db[c]), d.H, d.W, d.k, h, w);
  if (!d.gate) {
    *u2 = Acc(1);
    return *u1;
  }
  *u2 = sr::dgc_conv_at<T, Acc>(xb, dw + (c + Cg) * kk, sr_cast<Acc>(db[c + Cg]), d.H, d.W, d.k, h, w);
  return *u1 * *u2;
}

// Pass 1, one chunk of `chunk` pixels (a multiple of N) of group grp0 + blockIdx.y: y (when
// out != nullptr), and the partial sums of y and of g * y (when g != nullptr) to
// ps / pga[grp * chunks + blockIdx.x].
template <typename T, typename I, int N>
__global__ void pool_part_kernel(const T* __restrict__ x, const T* __restrict__ dw, const T* __restrict__ db,
                                 const T* __restrict__ g, T* __restrict__ out, typename AccOf<T>::type* __restrict__ ps,
                                 typename AccOf<T>::type* __restrict__ pga, sr::DgcDims d, I chunk, I grp0) {
  using Acc = typename AccOf<T>::type;
  __shared__ Acc shm[kThreads];
  const I Cg = I(sr::dgc_out_channels(d)), C = I(d.C), W = I(d.W), HW = I(d.H) * W;
  const I grp = grp0 + I(blockIdx.y), b = grp / Cg, c = grp - b * Cg;
  const I lo = I(blockIdx.x) * chunk, hi = HW - lo < chunk ? HW : lo + chunk;
  const T* xa = x + (b * C + c) * HW;
  const T* xb = x + (b * C + c + (d.gate ? Cg : 0)) * HW;
  Acc sy = Acc(0), sgy = Acc(0);
  for (I e = lo + I(threadIdx.x) * N; e < hi; e += kThreads * N) {
    I h = e / W, w = e - h * W;
    Acc y[N];
#pragma unroll
    for (int j = 0; j < N; ++j) {
      Acc u1, u2;
      y[j] = gated_at<T, Acc>(xa, xb, dw, db, d, int(c), int(h), int(w), &u1, &u2);
      sy += y[j];
      if (++w == W) w = 0, ++h;
    }
    if (out != nullptr) store_vec<N>(out + grp * HW + e, y);
    if (g != nullptr) {
      Acc gv[N];
      load_vec<N>(g + grp * HW + e, gv);
#pragma unroll
      for (int j = 0; j < N; ++j) sgy += gv[j] * y[j];
    }
  }
  sy = block_sum(sy, shm);
  if (g != nullptr) sgy = block_sum(sgy, shm);
  if (threadIdx.x == 0) {
    const I at = grp * I(gridDim.x) + I(blockIdx.x);
    ps[at] = sy;
    if (g != nullptr) pga[at] = sgy;
  }
}

// s = each group's mean, ga = its sum of g * y (when pga != nullptr): the partials in order.
template <typename T>
__global__ void pool_sum_kernel(const typename AccOf<T>::type* __restrict__ ps,
                                const typename AccOf<T>::type* __restrict__ pga, const T* __restrict__ dw,
                                typename AccOf<T>::type* __restrict__ s, typename AccOf<T>::type* __restrict__ ga,
                                sr::DgcDims d, int chunks) {
  using Acc = typename AccOf<T>::type;
  const int G = int(sr::dgc_groups(d)), Cg = int(sr::dgc_out_channels(d));
  for (int grp = blockIdx.x * blockDim.x + threadIdx.x; grp < G; grp += gridDim.x * blockDim.x) {
    Acc sy = Acc(0), sgy = Acc(0);
    for (int q = 0; q < chunks; ++q) {
      sy += ps[grp * chunks + q];
      if (pga != nullptr) sgy += pga[grp * chunks + q];
    }
    s[grp] = sr::dgc_mean<T, Acc>(sy, dw, d, grp % Cg);
    if (pga != nullptr) ga[grp] = sgy;
  }
}

// a[b, o] (and gs[b, o] when ga != nullptr), one thread each.
template <typename T>
__global__ void mix_kernel(const T* __restrict__ cw, const T* __restrict__ cb, const typename AccOf<T>::type* s,
                           const typename AccOf<T>::type* ga, typename AccOf<T>::type* a, typename AccOf<T>::type* gs,
                           sr::DgcDims d) {
  using Acc = typename AccOf<T>::type;
  const int G = int(sr::dgc_groups(d)), Cg = int(sr::dgc_out_channels(d));
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < G; t += gridDim.x * blockDim.x) {
    const int b = t / Cg, o = t - b * Cg;
    a[t] = sr::dgc_attention<T, Acc>(cw, cb, s + b * Cg, Cg, o);
    if (ga != nullptr) gs[t] = sr::dgc_pool_grad<T, Acc>(cw, ga + b * Cg, Cg, o);
  }
}

// out *= a[group], blockIdx.y the group grp0 + blockIdx.y. out was written by pass 1 (an
// earlier launch), and is re-read here through the coherent path as this kernel writes it.
template <typename T, typename I, int N>
__global__ void scale_kernel(T* __restrict__ out, const typename AccOf<T>::type* __restrict__ a, I HW, I grp0) {
  using Acc = typename AccOf<T>::type;
  const I grp = grp0 + I(blockIdx.y);
  const Acc av = a[grp];
  const UIdx<I> groups = UIdx<I>(HW / N);
  for (UIdx<I> gi = grid_start<I>(); gi < groups; gi += grid_step<I>()) {
    T* p = out + grp * HW + I(gi) * N;
    Acc v[N];
    load_vec<N, false>(p, v);
#pragma unroll
    for (int j = 0; j < N; ++j) v[j] *= av;
    store_vec<N>(p, v);
  }
}

// dcw[o, i] = sum_b ga[b, o] s[b, i]; dcb[o] = sum_b ga[b, o].
template <typename T>
__global__ void ca_grad_kernel(const typename AccOf<T>::type* s, const typename AccOf<T>::type* ga, T* __restrict__ dcw,
                               T* __restrict__ dcb, sr::DgcDims d) {
  using Acc = typename AccOf<T>::type;
  const int Cg = int(sr::dgc_out_channels(d)), B = int(d.B);
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < Cg * Cg; t += gridDim.x * blockDim.x) {
    const int o = t / Cg, i = t - o * Cg;
    Acc sw = Acc(0), sb = Acc(0);
    for (int b = 0; b < B; ++b) {
      sw += ga[b * Cg + o] * s[b * Cg + i];
      sb += ga[b * Cg + o];
    }
    dcw[t] = sr_cast<T>(sw);
    if (i == 0) dcb[o] = sr_cast<T>(sb);
  }
}

// gu of both gated channels, N pixels of group grp0 + blockIdx.y per step.
template <typename T, typename I, int N>
__global__ void gu_kernel(const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ dw,
                          const T* __restrict__ db, const typename AccOf<T>::type* __restrict__ a,
                          const typename AccOf<T>::type* __restrict__ gs, typename AccOf<T>::type* __restrict__ gu,
                          sr::DgcDims d, I grp0) {
  using Acc = typename AccOf<T>::type;
  const I Cg = I(sr::dgc_out_channels(d)), C = I(d.C), W = I(d.W), HW = I(d.H) * W;
  const I grp = grp0 + I(blockIdx.y), b = grp / Cg, c = grp - b * Cg;
  const I pa = (b * C + c) * HW, pb = (b * C + c + (d.gate ? Cg : 0)) * HW;
  const Acc ag = a[grp], gsg = gs[grp] / Acc(HW);
  const UIdx<I> groups = UIdx<I>(HW / N);
  for (UIdx<I> gi = grid_start<I>(); gi < groups; gi += grid_step<I>()) {
    const I e = I(gi) * N;
    I h = e / W, w = e - h * W;
    Acc gv[N], ua[N], ub[N];
    load_vec<N>(g + grp * HW + e, gv);
#pragma unroll
    for (int j = 0; j < N; ++j) {
      Acc u1, u2;
      gated_at<T, Acc>(x + pa, x + pb, dw, db, d, int(c), int(h), int(w), &u1, &u2);
      const Acc gy = gv[j] * ag + gsg;
      ua[j] = d.gate ? gy * u2 : gy;
      ub[j] = gy * u1;
      if (++w == W) w = 0, ++h;
    }
    store_vec<N>(gu + pa + e, ua);
    if (d.gate) store_vec<N>(gu + pb + e, ub);
  }
}

// dx of N pixels of plane p0 + blockIdx.y per step.
template <typename T, typename I, int N>
__global__ void dx_kernel(const typename AccOf<T>::type* __restrict__ gu, const T* __restrict__ dw, T* __restrict__ dx,
                          sr::DgcDims d, I p0) {
  using Acc = typename AccOf<T>::type;
  const I C = I(d.C), W = I(d.W), HW = I(d.H) * W, kk = I(d.k * d.k);
  const I plane = p0 + I(blockIdx.y), c = plane % C;
  const UIdx<I> groups = UIdx<I>(HW / N);
  for (UIdx<I> gi = grid_start<I>(); gi < groups; gi += grid_step<I>()) {
    const I e = I(gi) * N;
    I h = e / W, w = e - h * W;
    Acc v[N];
#pragma unroll
    for (int j = 0; j < N; ++j) {
      v[j] = sr::dgc_conv_t_at<Acc, T, Acc>(gu + plane * HW, dw + c * kk, d.H, d.W, d.k, int(h), int(w));
      if (++w == W) w = 0, ++h;
    }
    store_vec<N>(dx + plane * HW + e, v);
  }
}

// Weight-gradient partials over one chunk of `chunk` pixels (a multiple of N) of image
// b0 + blockIdx.z: K > 0 (k = K) sums all K*K taps and the bias of channel c0 + blockIdx.y in
// one pass over gu; K == 0 (any k) sums the one tap (blockIdx.y % (k*k + 1), k*k the bias) of
// channel c0 + blockIdx.y / (k*k + 1). To part[((c * (k*k + 1) + tap) * B + b) * chunks + chunk].
template <typename T, typename I, int N, int K>
__global__ void dw_part_kernel(const typename AccOf<T>::type* __restrict__ gu, const T* __restrict__ x,
                               typename AccOf<T>::type* __restrict__ part, sr::DgcDims d, I chunk, I c0, I b0) {
  using Acc = typename AccOf<T>::type;
  constexpr int NT = K > 0 ? K * K + 1 : 1;
  __shared__ Acc shm[kThreads];
  const I C = I(d.C), B = I(d.B), H = I(d.H), W = I(d.W), HW = H * W, k = I(d.k), taps = k * k + 1, p = k / 2;
  const I c = c0 + (K > 0 ? I(blockIdx.y) : I(blockIdx.y) / taps);
  const I tap0 = K > 0 ? I(0) : I(blockIdx.y) - (c - c0) * taps;
  const I b = b0 + I(blockIdx.z), lo = I(blockIdx.x) * chunk, hi = HW - lo < chunk ? HW : lo + chunk;
  const Acc* gp = gu + (b * C + c) * HW;
  const T* xp = x + (b * C + c) * HW;
  Acc acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = Acc(0);
  for (I e = lo + I(threadIdx.x) * N; e < hi; e += kThreads * N) {
    I h = e / W, w = e - h * W;
    Acc gv[N];
    load_vec<N>(gp + e, gv);
#pragma unroll
    for (int j = 0; j < N; ++j) {
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        const I tap = tap0 + t;
        if (tap == k * k) {
          acc[t] += gv[j];
        } else {
          const I hh = h + (K > 0 ? I(t / K) : tap / k) - p, ww = w + (K > 0 ? I(t % K) : tap % k) - p;
          if (hh >= 0 && hh < H && ww >= 0 && ww < W) acc[t] += gv[j] * sr_cast<Acc>(xp[hh * W + ww]);
        }
      }
      if (++w == W) w = 0, ++h;
    }
  }
  const I chunks = I(gridDim.x);
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const Acc v = block_sum(acc[t], shm);
    if (threadIdx.x == 0) part[((c * taps + tap0 + t) * B + b) * chunks + I(blockIdx.x)] = v;
  }
}

// ddw / ddb: each (channel, tap)'s B * chunks partials, added in order.
template <typename T>
__global__ void dw_sum_kernel(const typename AccOf<T>::type* __restrict__ part, T* __restrict__ ddw,
                              T* __restrict__ ddb, int jobs, int taps, int per_job) {
  using Acc = typename AccOf<T>::type;
  for (int job = blockIdx.x * blockDim.x + threadIdx.x; job < jobs; job += gridDim.x * blockDim.x) {
    Acc v = Acc(0);
    for (int q = 0; q < per_job; ++q) v += part[job * per_job + q];
    const int c = job / taps, tap = job - c * taps;
    if (tap == taps - 1)
      ddb[c] = sr_cast<T>(v);
    else
      ddw[c * (taps - 1) + tap] = sr_cast<T>(v);
  }
}

sr::DgcDims make_dims(int64_t B, int64_t C, int64_t H, int64_t W, int64_t k, bool gate) {
  sr::DgcDims d;
  d.B = B;
  d.C = C;
  d.H = H;
  d.W = W;
  d.k = k;
  d.gate = gate;
  return d;
}

int64_t acc_size(DType dtype) { return dtype == DType::kFloat64 ? 8 : 4; }

// Chunks per plane for `jobs` block rows: two waves of blocks, each chunk at least 8 pixels a
// thread.
int64_t chunks_of(int64_t jobs, int64_t HW) {
  if (jobs <= 0) return 1;
  const int64_t want = (kTwoWaveBlocks + jobs - 1) / jobs;
  const int64_t most = (HW + kThreads * 8 - 1) / (kThreads * 8);
  return want < most ? want : most;
}

// The chunk length, a whole number of packs, and the number of chunks it makes.
int64_t chunk_len(int64_t HW, int64_t jobs, int n) {
  return ((HW + chunks_of(jobs, HW) - 1) / chunks_of(jobs, HW) + n - 1) / n * n;
}

// Taps summed per weight-gradient block: all of them for k = 3 (NAFNet), one otherwise.
int64_t tap_blocks(int64_t k) { return k == 3 ? 1 : k * k + 1; }

int64_t pool_partials(const sr::DgcDims& d) { return sr::dgc_groups(d) * chunks_of(sr::dgc_groups(d), d.H * d.W); }
int64_t dw_partials(const sr::DgcDims& d) {
  const int64_t jobs = d.C * tap_blocks(d.k) * d.B;
  return d.C * (d.k * d.k + 1) * d.B * chunks_of(jobs, d.H * d.W);
}

unsigned slice(int64_t n, int64_t at) { return unsigned(n - at < 65535 ? n - at : 65535); }

// Pass 1 over every group: partials, then each group's mean s (and ga when g is given).
template <typename T, typename Acc, typename I, int N>
void pooled(const T* x, const T* dw, const T* db, const T* g, T* out, Acc* s, Acc* ga, Acc* ps, Acc* pga,
            const sr::DgcDims& d, cudaStream_t stream) {
  const int64_t G = sr::dgc_groups(d), HW = d.H * d.W, len = chunk_len(HW, G, N), chunks = (HW + len - 1) / len;
  for (int64_t g0 = 0; g0 < G; g0 += 65535)
    SR_LAUNCH(dim3(unsigned(chunks), slice(G, g0)), kThreads, 0, stream, pool_part_kernel<T, I, N>)(
        x, dw, db, g, out, ps, pga, d, I(len), I(g0));
  SR_LAUNCH(blocks_for(G, 64), 64, 0, stream, pool_sum_kernel<T>)(ps, g != nullptr ? pga : nullptr, dw, s, ga, d,
                                                                  int(chunks));
}

}  // namespace

int64_t dwconv_gate_ca_workspace_bytes(DType dtype, int64_t B, int64_t C, int64_t H, int64_t W, int64_t k, bool gate,
                                       bool backward) {
  const auto d = make_dims(B, C, H, W, k, gate);
  const int64_t G = sr::dgc_groups(d);
  return acc_size(dtype) *
         (backward ? 4 * G + B * C * H * W + 2 * pool_partials(d) + dw_partials(d) : 2 * G + pool_partials(d));
}

Status dwconv_gate_ca_fwd(const void* x, const void* dw, const void* db, const void* cw, const void* cb, void* out,
                          void* workspace, DType dtype, int64_t B, int64_t C, int64_t H, int64_t W, int64_t k,
                          bool gate, cudaStream_t stream) {
  const auto d = make_dims(B, C, H, W, k, gate);
  const int64_t G = sr::dgc_groups(d), HW = H * W;
  if (G == 0 || HW == 0) return "";
  const int n = vec_width(dtype, HW, all_aligned16(x, out));
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using Acc = typename AccOf<T>::type;
    Acc* s = static_cast<Acc*>(workspace);
    Acc* a = s + G;
    Acc* ps = a + G;
    T* o = static_cast<T*>(out);
    with_width<T>(n, [&](auto nc) {
      constexpr int N = decltype(nc)::value;
      with_index(B * C * HW, [&](auto itag) {
        using I = decltype(itag);
        pooled<T, Acc, I, N>(static_cast<const T*>(x), static_cast<const T*>(dw), static_cast<const T*>(db), nullptr, o,
                             s, nullptr, ps, nullptr, d, stream);
        SR_LAUNCH(blocks_for(G, kThreads), kThreads, 0, stream, mix_kernel<T>)(
            static_cast<const T*>(cw), static_cast<const T*>(cb), s, nullptr, a, nullptr, d);
        for (int64_t g0 = 0; g0 < G; g0 += 65535)
          SR_LAUNCH(dim3(blocks_for(HW / N, kThreads), slice(G, g0)), kThreads, 0, stream, scale_kernel<T, I, N>)(
              o, a, I(HW), I(g0));
      });
    });
  });
  return last_error();
}

Status dwconv_gate_ca_bwd(const void* grad_out, const void* x, const void* dw, const void* db, const void* cw,
                          const void* cb, void* dx, void* ddw, void* ddb, void* dcw, void* dcb, void* workspace,
                          DType dtype, int64_t B, int64_t C, int64_t H, int64_t W, int64_t k, bool gate,
                          cudaStream_t stream) {
  const auto d = make_dims(B, C, H, W, k, gate);
  const int64_t G = sr::dgc_groups(d), Cg = sr::dgc_out_channels(d), HW = H * W;
  if (G == 0 || HW == 0) return "";  // the glue zero-fills the gradients
  // gu sits 4 * G accumulator values into the workspace: 16-byte aligned when the workspace is.
  const int n = vec_width(dtype, HW, all_aligned16(grad_out, x, dx, workspace));
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using Acc = typename AccOf<T>::type;
    Acc* s = static_cast<Acc*>(workspace);
    Acc* ga = s + G;
    Acc* a = ga + G;
    Acc* gs = a + G;
    Acc* gu = gs + G;
    Acc* ps = gu + B * C * HW;
    Acc* pga = ps + pool_partials(d);
    Acc* pdw = pga + pool_partials(d);
    const T* g = static_cast<const T*>(grad_out);
    const T* xp = static_cast<const T*>(x);
    const T* dwp = static_cast<const T*>(dw);
    const T* dbp = static_cast<const T*>(db);
    with_width<T>(n, [&](auto nc) {
      constexpr int N = decltype(nc)::value;
      with_index(B * C * HW, [&](auto itag) {
        using I = decltype(itag);
        pooled<T, Acc, I, N>(xp, dwp, dbp, g, nullptr, s, ga, ps, pga, d, stream);
        SR_LAUNCH(blocks_for(G, kThreads), kThreads, 0, stream, mix_kernel<T>)(
            static_cast<const T*>(cw), static_cast<const T*>(cb), s, ga, a, gs, d);
        SR_LAUNCH(blocks_for(Cg * Cg, kThreads), kThreads, 0, stream, ca_grad_kernel<T>)(s, ga, static_cast<T*>(dcw),
                                                                                         static_cast<T*>(dcb), d);
        for (int64_t g0 = 0; g0 < G; g0 += 65535)
          SR_LAUNCH(dim3(blocks_for(HW / N, kThreads), slice(G, g0)), kThreads, 0, stream, gu_kernel<T, I, N>)(
              g, xp, dwp, dbp, a, gs, gu, d, I(g0));
        for (int64_t p0 = 0; p0 < B * C; p0 += 65535)
          SR_LAUNCH(dim3(blocks_for(HW / N, kThreads), slice(B * C, p0)), kThreads, 0, stream, dx_kernel<T, I, N>)(
              gu, dwp, static_cast<T*>(dx), d, I(p0));
        const int64_t per_c = tap_blocks(k), len = chunk_len(HW, C * per_c * B, N), chunks = (HW + len - 1) / len;
        // Rows of the grid: channels (times taps for k != 3), sliced to 65535 on whole channels.
        const int64_t c_step = 65535 / per_c;
        for (int64_t c0 = 0; c0 < C; c0 += c_step)
          for (int64_t b0 = 0; b0 < B; b0 += 65535) {
            const dim3 grid(unsigned(chunks), unsigned((C - c0 < c_step ? C - c0 : c_step) * per_c), slice(B, b0));
            if (k == 3)
              SR_LAUNCH(grid, kThreads, 0, stream, dw_part_kernel<T, I, N, 3>)(gu, xp, pdw, d, I(len), I(c0), I(b0));
            else
              SR_LAUNCH(grid, kThreads, 0, stream, dw_part_kernel<T, I, N, 0>)(gu, xp, pdw, d, I(len), I(c0), I(b0));
          }
        const int64_t jobs = C * (k * k + 1);
        SR_LAUNCH(blocks_for(jobs, 64), 64, 0, stream, dw_sum_kernel<T>)(
            pdw, static_cast<T*>(ddw), static_cast<T*>(ddb), int(jobs), int(k * k + 1), int(B * chunks));
      });
    });
  });
  return last_error();
}

}  // namespace sr_cuda
