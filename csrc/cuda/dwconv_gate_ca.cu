// dwconv_gate_ca CUDA kernels. Forward: one block per (b, c') group computes the gated
// map (threads stride over the plane, each pixel's k*k taps read through L1/L2) and
// reduces its sum in shared memory; one thread per (b, o) forms the attention scale;
// an elementwise pass applies it. Backward: the same pooled pass (with sum g*y), the
// small dense part, an elementwise pass writing the conv-output gradient gu into the
// workspace, then the transposed conv per pixel and one block per (channel, tap) for
// the weight gradients. Per-element math from csrc/kernels/dwconv_gate_ca.h.
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
    if (threadIdx.x < o) shm[threadIdx.x] += shm[threadIdx.x + o];
    __syncthreads();
  }
  const Acc r = shm[0];
  __syncthreads();
  return r;
}

template <typename T, typename Acc>
__device__ Acc gated_at(const T* x, const T* dw, const T* db, const sr::DgcDims& d, int64_t b, int64_t c, int64_t h,
                        int64_t w, Acc* u1, Acc* u2) {
  const int64_t HW = d.H * d.W, kk = d.k * d.k, Cg = sr::dgc_out_channels(d);
  *u1 = sr::dgc_conv_at<T, Acc>(x + (b * d.C + c) * HW, dw + c * kk, sr_cast<Acc>(db[c]), d.H, d.W, d.k, h, w);
  if (!d.gate) {
    *u2 = Acc(1);
    return *u1;
  }
  *u2 = sr::dgc_conv_at<T, Acc>(x + (b * d.C + c + Cg) * HW, dw + (c + Cg) * kk, sr_cast<Acc>(db[c + Cg]), d.H, d.W,
                                d.k, h, w);
  return *u1 * *u2;
}

// Pass 1: y (when out != nullptr), s = mean y, and ga = sum g y (when g != nullptr).
template <typename T>
__global__ void pool_kernel(const T* __restrict__ x, const T* __restrict__ dw, const T* __restrict__ db,
                            const T* __restrict__ g, T* __restrict__ out, typename AccOf<T>::type* s,
                            typename AccOf<T>::type* ga, sr::DgcDims d) {
  using Acc = typename AccOf<T>::type;
  __shared__ Acc shm[kThreads];
  const int64_t Cg = sr::dgc_out_channels(d), HW = d.H * d.W;
  for (int64_t grp = blockIdx.x; grp < sr::dgc_groups(d); grp += gridDim.x) {
    const int64_t b = grp / Cg, c = grp % Cg;
    Acc sy = Acc(0), sgy = Acc(0);
    for (int64_t e = threadIdx.x; e < HW; e += blockDim.x) {
      Acc u1, u2;
      const Acc y = gated_at<T, Acc>(x, dw, db, d, b, c, e / d.W, e % d.W, &u1, &u2);
      sy += y;
      if (out != nullptr) out[grp * HW + e] = sr_cast<T>(y);
      if (g != nullptr) sgy += sr_cast<Acc>(g[grp * HW + e]) * y;
    }
    sy = block_sum(sy, shm);
    if (g != nullptr) sgy = block_sum(sgy, shm);
    if (threadIdx.x == 0) {
      s[grp] = sr::dgc_mean<T, Acc>(sy, dw, d, c);
      if (ga != nullptr) ga[grp] = sgy;
    }
  }
}

// a[b, o] (and gs[b, o] when ga != nullptr), one thread each.
template <typename T>
__global__ void mix_kernel(const T* __restrict__ cw, const T* __restrict__ cb, const typename AccOf<T>::type* s,
                           const typename AccOf<T>::type* ga, typename AccOf<T>::type* a, typename AccOf<T>::type* gs,
                           sr::DgcDims d) {
  using Acc = typename AccOf<T>::type;
  const int64_t Cg = sr::dgc_out_channels(d);
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < sr::dgc_groups(d);
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = t / Cg, o = t % Cg;
    a[t] = sr::dgc_attention<T, Acc>(cw, cb, s + b * Cg, Cg, o);
    if (ga != nullptr) gs[t] = sr::dgc_pool_grad<T, Acc>(cw, ga + b * Cg, Cg, o);
  }
}

template <typename T>
__global__ void scale_kernel(T* __restrict__ out, const typename AccOf<T>::type* a, int64_t n, int64_t HW) {
  using Acc = typename AccOf<T>::type;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
    out[e] = sr_cast<T>(sr_cast<Acc>(out[e]) * a[e / HW]);
}

// dcw[o, i] = sum_b ga[b, o] s[b, i]; dcb[o] = sum_b ga[b, o].
template <typename T>
__global__ void ca_grad_kernel(const typename AccOf<T>::type* s, const typename AccOf<T>::type* ga, T* __restrict__ dcw,
                               T* __restrict__ dcb, sr::DgcDims d) {
  using Acc = typename AccOf<T>::type;
  const int64_t Cg = sr::dgc_out_channels(d);
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < Cg * Cg; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = t / Cg, i = t % Cg;
    Acc sw = Acc(0), sb = Acc(0);
    for (int64_t b = 0; b < d.B; ++b) {
      sw += ga[b * Cg + o] * s[b * Cg + i];
      sb += ga[b * Cg + o];
    }
    dcw[t] = sr_cast<T>(sw);
    if (i == 0) dcb[o] = sr_cast<T>(sb);
  }
}

// gu of both gated channels per (b, c', pixel).
template <typename T>
__global__ void gu_kernel(const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ dw,
                          const T* __restrict__ db, const typename AccOf<T>::type* a, const typename AccOf<T>::type* gs,
                          typename AccOf<T>::type* gu, sr::DgcDims d) {
  using Acc = typename AccOf<T>::type;
  const int64_t Cg = sr::dgc_out_channels(d), HW = d.H * d.W, n = sr::dgc_groups(d) * HW;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t grp = e / HW, pix = e % HW, b = grp / Cg, c = grp % Cg;
    Acc u1, u2;
    gated_at<T, Acc>(x, dw, db, d, b, c, pix / d.W, pix % d.W, &u1, &u2);
    const Acc gy = sr_cast<Acc>(g[e]) * a[grp] + gs[grp] / Acc(HW);
    if (d.gate) {
      gu[(b * d.C + c) * HW + pix] = gy * u2;
      gu[(b * d.C + c + Cg) * HW + pix] = gy * u1;
    } else {
      gu[(b * d.C + c) * HW + pix] = gy;
    }
  }
}

template <typename T>
__global__ void dx_kernel(const typename AccOf<T>::type* gu, const T* __restrict__ dw, T* __restrict__ dx,
                          sr::DgcDims d) {
  using Acc = typename AccOf<T>::type;
  const int64_t HW = d.H * d.W, n = d.B * d.C * HW, kk = d.k * d.k;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t plane = e / HW, pix = e % HW, c = plane % d.C;
    dx[e] =
        sr_cast<T>(sr::dgc_conv_t_at<Acc, T, Acc>(gu + plane * HW, dw + c * kk, d.H, d.W, d.k, pix / d.W, pix % d.W));
  }
}

// One block per (c, tap), tap k*k standing for the bias.
template <typename T>
__global__ void dw_grad_kernel(const typename AccOf<T>::type* gu, const T* __restrict__ x, T* __restrict__ ddw,
                               T* __restrict__ ddb, sr::DgcDims d) {
  using Acc = typename AccOf<T>::type;
  __shared__ Acc shm[kThreads];
  const int64_t HW = d.H * d.W, kk = d.k * d.k, p = d.k / 2;
  for (int64_t job = blockIdx.x; job < d.C * (kk + 1); job += gridDim.x) {
    const int64_t c = job / (kk + 1), tap = job % (kk + 1);
    const int64_t di = tap / d.k - p, dj = tap % d.k - p;
    Acc acc = Acc(0);
    for (int64_t e = threadIdx.x; e < d.B * HW; e += blockDim.x) {
      const int64_t b = e / HW, pix = e % HW, h = pix / d.W, w = pix % d.W;
      const Acc gv = gu[(b * d.C + c) * HW + pix];
      if (tap == kk) {
        acc += gv;
      } else {
        const int64_t hh = h + di, ww = w + dj;
        if (hh >= 0 && hh < d.H && ww >= 0 && ww < d.W) acc += gv * sr_cast<Acc>(x[(b * d.C + c) * HW + hh * d.W + ww]);
      }
    }
    acc = block_sum(acc, shm);
    if (threadIdx.x == 0) {
      if (tap == kk)
        ddb[c] = sr_cast<T>(acc);
      else
        ddw[c * kk + tap] = sr_cast<T>(acc);
    }
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

unsigned grid_of(int64_t jobs) { return static_cast<unsigned>(jobs < 65535 ? (jobs > 0 ? jobs : 1) : 65535); }

}  // namespace

int64_t dwconv_gate_ca_workspace_bytes(DType dtype, int64_t B, int64_t C, int64_t H, int64_t W, bool gate,
                                       bool backward) {
  const int64_t G = B * (gate ? C / 2 : C);
  return acc_size(dtype) * (backward ? 4 * G + B * C * H * W : 2 * G);
}

Status dwconv_gate_ca_fwd(const void* x, const void* dw, const void* db, const void* cw, const void* cb, void* out,
                          void* workspace, DType dtype, int64_t B, int64_t C, int64_t H, int64_t W, int64_t k,
                          bool gate, cudaStream_t stream) {
  const auto d = make_dims(B, C, H, W, k, gate);
  const int64_t G = sr::dgc_groups(d);
  if (G == 0 || H * W == 0) return "";
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using Acc = typename AccOf<T>::type;
    Acc* s = static_cast<Acc*>(workspace);
    Acc* a = s + G;
    SR_LAUNCH(grid_of(G), kThreads, 0, stream, pool_kernel<T>)(static_cast<const T*>(x), static_cast<const T*>(dw),
                                                               static_cast<const T*>(db), nullptr, static_cast<T*>(out),
                                                               s, nullptr, d);
    SR_LAUNCH(blocks_for(G, kThreads), kThreads, 0, stream, mix_kernel<T>)(
        static_cast<const T*>(cw), static_cast<const T*>(cb), s, nullptr, a, nullptr, d);
    SR_LAUNCH(blocks_for(G * H * W, kThreads), kThreads, 0, stream, scale_kernel<T>)(static_cast<T*>(out), a, G * H * W,
                                                                                     H * W);
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
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using Acc = typename AccOf<T>::type;
    Acc* s = static_cast<Acc*>(workspace);
    Acc* ga = s + G;
    Acc* a = ga + G;
    Acc* gs = a + G;
    Acc* gu = gs + G;
    const T* g = static_cast<const T*>(grad_out);
    const T* xp = static_cast<const T*>(x);
    const T* dwp = static_cast<const T*>(dw);
    const T* dbp = static_cast<const T*>(db);
    SR_LAUNCH(grid_of(G), kThreads, 0, stream, pool_kernel<T>)(xp, dwp, dbp, g, nullptr, s, ga, d);
    SR_LAUNCH(blocks_for(G, kThreads), kThreads, 0, stream, mix_kernel<T>)(static_cast<const T*>(cw),
                                                                           static_cast<const T*>(cb), s, ga, a, gs, d);
    SR_LAUNCH(blocks_for(Cg * Cg, kThreads), kThreads, 0, stream, ca_grad_kernel<T>)(s, ga, static_cast<T*>(dcw),
                                                                                     static_cast<T*>(dcb), d);
    SR_LAUNCH(blocks_for(G * HW, kThreads), kThreads, 0, stream, gu_kernel<T>)(g, xp, dwp, dbp, a, gs, gu, d);
    SR_LAUNCH(blocks_for(B * C * HW, kThreads), kThreads, 0, stream, dx_kernel<T>)(gu, dwp, static_cast<T*>(dx), d);
    SR_LAUNCH(grid_of(C * (k * k + 1)), kThreads, 0, stream, dw_grad_kernel<T>)(gu, xp, static_cast<T*>(ddw),
                                                                                static_cast<T*>(ddb), d);
  });
  return last_error();
}

}  // namespace sr_cuda
