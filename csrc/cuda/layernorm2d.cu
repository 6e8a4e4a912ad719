// layernorm2d CUDA kernels. Forward and dL/dx: a thread per N neighbouring pixels of one
// image (N = 16 bytes of T when HW is a multiple of it and the tensors are 16-byte aligned,
// else 1), walking their C channel values HW apart: each channel step is one 128-bit load,
// and a warp's loads are one coalesced run. blockIdx.y is the image, so no index is divided.
// The weight and bias gradients: a (pixel chunk, channel, image) grid of blocks, each summing
// its chunk into a partial, and a second kernel adding each channel's partials in order (no
// atomics, deterministic). The per-element formulas come from csrc/kernels/layernorm2d.h.
#include "cuda/common.cuh"
#include "cuda/layernorm2d.cuh"
#include "kernels/convert.h"
#include "kernels/gelu.h"
#include "kernels/layernorm2d.h"

namespace sr_cuda {
namespace {

constexpr int kThreads = 256;

enum class Prologue : int { kNone = 0, kGelu = 1, kGeluTanh = 2 };

template <Prologue P, typename Acc>
__device__ __forceinline__ Acc prologue(Acc v) {
  if constexpr (P == Prologue::kNone)
    return v;
  else
    return sr::gelu<Acc>(v, P == Prologue::kGeluTanh);
}

// x's N values of channel c at this thread's pixels, through the prologue. GELU is
// recomputed in Acc at each of the three passes instead of stored, so it is rounded once,
// at y, for every dtype (for float / double this equals storing it: T is Acc).
template <Prologue P, int N, bool kNc, typename T, typename Acc>
__device__ __forceinline__ void load_px(const T* x, Acc (&v)[N]) {
  load_vec<N, kNc>(x, v);
#pragma unroll
  for (int j = 0; j < N; ++j) v[j] = prologue<P>(v[j]);
}

// The statistics of N pixels, as sr::ln2d_pixel_stats does for one: shifted by channel 0.
template <Prologue P, int N, bool kNc, typename T, typename Acc, typename I>
__device__ __forceinline__ void px_stats(const T* x, I C, I HW, Acc eps, Acc (&x0)[N], Acc (&dm)[N], Acc (&rstd)[N]) {
  load_px<P, N, kNc>(x, x0);
  Acc v[N];
#pragma unroll
  for (int j = 0; j < N; ++j) dm[j] = rstd[j] = Acc(0);
  for (I c = 0; c < C; ++c) {
    load_px<P, N, kNc>(x + c * HW, v);
#pragma unroll
    for (int j = 0; j < N; ++j) dm[j] += v[j] - x0[j];
  }
#pragma unroll
  for (int j = 0; j < N; ++j) dm[j] /= Acc(C);
  for (I c = 0; c < C; ++c) {
    load_px<P, N, kNc>(x + c * HW, v);
#pragma unroll
    for (int j = 0; j < N; ++j) {
      const Acc d = sr::ln2d_dev(v[j], x0[j], dm[j]);
      rstd[j] += d * d;
    }
  }
#pragma unroll
  for (int j = 0; j < N; ++j) rstd[j] = sr::ln2d_rsqrt(rstd[j] / Acc(C) + eps);
}

// blockIdx.y is the image (the launcher slices batches over 65535 images). With a GELU
// prologue and T = Acc (float, double), GELU(x) is staged in y first, read back (coherent
// loads) by the three passes: rounding it to T is then exact. The half types recompute it in
// Acc at every pass instead, so it is rounded once, at y.
template <typename T, typename I, int N, Prologue P>
__global__ void fwd_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b, T* __restrict__ y,
                           I C, I HW, double eps) {
  using Acc = typename AccOf<T>::type;
  constexpr bool kStaged = P != Prologue::kNone && std::is_same_v<T, Acc>;
  constexpr Prologue Q = kStaged ? Prologue::kNone : P;
  const UIdx<I> groups = UIdx<I>(HW / N);
  const I img = I(blockIdx.y);
  for (UIdx<I> gi = grid_start<I>(); gi < groups; gi += grid_step<I>()) {
    const I base = img * C * HW + I(gi) * N;
    Acc x0[N], dm[N], rstd[N], v[N];
    if constexpr (kStaged) {
      for (I c = 0; c < C; ++c) {
        load_px<P, N, true>(x + base + c * HW, v);
        store_vec<N>(y + base + c * HW, v);
      }
    }
    const T* src = kStaged ? y : x;
    px_stats<Q, N, !kStaged>(src + base, C, HW, Acc(eps), x0, dm, rstd);
    for (I c = 0; c < C; ++c) {
      const Acc wc = sr_cast<Acc>(w[c]), bc = sr_cast<Acc>(b[c]);
      load_px<Q, N, !kStaged>(src + base + c * HW, v);
#pragma unroll
      for (int j = 0; j < N; ++j) v[j] = sr::ln2d_dev(v[j], x0[j], dm[j]) * rstd[j] * wc + bc;
      store_vec<N>(y + base + c * HW, v);
    }
  }
}

// dL/dx of N pixels, and their dm and rstd saved for the weight gradients (the shift is x at
// channel 0) to dm and rs (HW values per image). blockIdx.y is the image, as in fwd_kernel.
template <typename T, typename I, int N>
__global__ void bwd_x_kernel(const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ w,
                             T* __restrict__ gx, typename AccOf<T>::type* __restrict__ dm_out,
                             typename AccOf<T>::type* __restrict__ rs_out, I C, I HW, double eps) {
  using Acc = typename AccOf<T>::type;
  const UIdx<I> groups = UIdx<I>(HW / N);
  const I img = I(blockIdx.y);
  for (UIdx<I> gi = grid_start<I>(); gi < groups; gi += grid_step<I>()) {
    {
      const I base = img * C * HW + I(gi) * N;
      Acc x0[N], dm[N], rstd[N], a[N], bb[N], gv[N], xv[N];
      px_stats<Prologue::kNone, N, true>(x + base, C, HW, Acc(eps), x0, dm, rstd);
#pragma unroll
      for (int j = 0; j < N; ++j) a[j] = bb[j] = Acc(0);
      for (I c = 0; c < C; ++c) {
        const Acc wc = sr_cast<Acc>(w[c]);
        load_vec<N>(g + base + c * HW, gv);
        load_vec<N>(x + base + c * HW, xv);
#pragma unroll
        for (int j = 0; j < N; ++j) {
          const Acc gw = gv[j] * wc;
          a[j] += gw;
          bb[j] += gw * sr::ln2d_dev(xv[j], x0[j], dm[j]) * rstd[j];
        }
      }
#pragma unroll
      for (int j = 0; j < N; ++j) {
        a[j] /= Acc(C);
        bb[j] /= Acc(C);
      }
      for (I c = 0; c < C; ++c) {
        const Acc wc = sr_cast<Acc>(w[c]);
        load_vec<N>(g + base + c * HW, gv);
        load_vec<N>(x + base + c * HW, xv);
#pragma unroll
        for (int j = 0; j < N; ++j) {
          const Acc xhat = sr::ln2d_dev(xv[j], x0[j], dm[j]) * rstd[j];
          xv[j] = rstd[j] * (gv[j] * wc - a[j] - xhat * bb[j]);
        }
        store_vec<N>(gx + base + c * HW, xv);
      }
      const I s = img * HW + I(gi) * N;
      store_vec<N>(dm_out + s, dm);
      store_vec<N>(rs_out + s, rstd);
    }
  }
}

// The partial sums of g * xhat and g over one chunk of `chunk` pixels (a multiple of N) of
// channel c0 + blockIdx.y of image b0 + blockIdx.z, to part[(2, C, B, chunks)] (the launcher
// slices C and B over 65535, so the block has one job and no loop).
template <typename T, typename I, int N>
__global__ void bwd_w_part_kernel(const T* __restrict__ g, const T* __restrict__ x,
                                  const typename AccOf<T>::type* __restrict__ stats,
                                  typename AccOf<T>::type* __restrict__ part, I B, I C, I HW, I chunk, I c0, I b0) {
  using Acc = typename AccOf<T>::type;
  __shared__ Acc sw[kThreads], sb[kThreads];
  const I chunks = I(gridDim.x), lo = I(blockIdx.x) * chunk, hi = HW - lo < chunk ? HW : lo + chunk;
  const I c = c0 + I(blockIdx.y), img = b0 + I(blockIdx.z);
  const T* gc = g + (img * C + c) * HW;
  const T* xc = x + (img * C + c) * HW;
  const T* x0p = x + img * C * HW;
  const Acc* dmp = stats + img * HW;
  const Acc* rsp = stats + (B + img) * HW;
  Acc aw = Acc(0), ab = Acc(0);
  for (I p = lo + I(threadIdx.x) * N; p < hi; p += kThreads * N) {
    Acc gv[N], xv[N], x0[N], dm[N], rs[N];
    load_vec<N>(gc + p, gv);
    load_vec<N>(xc + p, xv);
    // The pixel's shift is its channel-0 value (ln2d_pixel_stats), re-read (L2-resident
    // across the channel blocks) as the workspace holds only dm and rstd.
    load_vec<N>(x0p + p, x0);
    load_vec<N>(dmp + p, dm);
    load_vec<N>(rsp + p, rs);
#pragma unroll
    for (int j = 0; j < N; ++j) {
      aw += gv[j] * sr::ln2d_dev(xv[j], x0[j], dm[j]) * rs[j];
      ab += gv[j];
    }
  }
  sw[threadIdx.x] = aw;
  sb[threadIdx.x] = ab;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (int(threadIdx.x) < s) {
      sw[threadIdx.x] += sw[threadIdx.x + s];
      sb[threadIdx.x] += sb[threadIdx.x + s];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const I at = (c * B + img) * chunks + I(blockIdx.x);
    part[at] = sw[0];
    part[C * B * chunks + at] = sb[0];
  }
}

// Each channel's B * chunks partials, added in order.
template <typename T>
__global__ void bwd_w_sum_kernel(const typename AccOf<T>::type* __restrict__ part, T* __restrict__ gw,
                                 T* __restrict__ gb, int C, int per_channel) {
  using Acc = typename AccOf<T>::type;
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += gridDim.x * blockDim.x) {
    Acc aw = Acc(0), ab = Acc(0);
    for (int q = 0; q < per_channel; ++q) {
      aw += part[c * per_channel + q];
      ab += part[C * per_channel + c * per_channel + q];
    }
    gw[c] = sr_cast<T>(aw);
    gb[c] = sr_cast<T>(ab);
  }
}

dim3 pixel_grid(int64_t B, int64_t HW, int n) {
  const int64_t groups = HW / n;
  return dim3(blocks_for(groups, kThreads), unsigned(B));
}

// Pixel chunks per image for the weight gradients: enough blocks for two waves, each chunk
// at least one pass of the block's threads.
int64_t w_chunks(int64_t B, int64_t C, int64_t HW) {
  const int64_t want = (kTwoWaveBlocks + B * C - 1) / (B * C);
  const int64_t most = (HW + kThreads * 8 - 1) / (kThreads * 8);
  return sr::imax(1, sr::imin(want, sr::imin(most, 65535)));
}

template <Prologue P>
void launch_fwd(const void* x, const void* weight, const void* bias, void* y, DType dtype, int64_t B, int64_t C,
                int64_t HW, double eps, cudaStream_t stream) {
  const int n = vec_width(dtype, HW, all_aligned16(x, y));
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    with_width<T>(n, [&](auto nc) {
      constexpr int N = decltype(nc)::value;
      with_index(B * C * HW, [&](auto itag) {
        using I = decltype(itag);
        for (int64_t b0 = 0; b0 < B; b0 += 65535) {
          const int64_t off = b0 * C * HW;
          SR_LAUNCH(pixel_grid(sr::imin(B - b0, 65535), HW, N), kThreads, 0, stream, fwd_kernel<T, I, N, P>)(
              static_cast<const T*>(x) + off, static_cast<const T*>(weight), static_cast<const T*>(bias),
              static_cast<T*>(y) + off, I(C), I(HW), eps);
        }
      });
    });
  });
}

}  // namespace

int64_t layernorm2d_bwd_workspace(int64_t B, int64_t C, int64_t HW) {
  return 2 * B * HW + 2 * C * B * w_chunks(B, C, HW);
}

Status layernorm2d_fwd(const void* x, const void* weight, const void* bias, void* y, DType dtype, int64_t B, int64_t C,
                       int64_t HW, double eps, cudaStream_t stream) {
  if (B * C * HW == 0) return "";
  launch_fwd<Prologue::kNone>(x, weight, bias, y, dtype, B, C, HW, eps, stream);
  return last_error();
}

Status gelu_layernorm2d_fwd(const void* x, const void* weight, const void* bias, void* y, DType dtype, int64_t B,
                            int64_t C, int64_t HW, double eps, bool tanh_approx, cudaStream_t stream) {
  if (B * C * HW == 0) return "";
  if (tanh_approx)
    launch_fwd<Prologue::kGeluTanh>(x, weight, bias, y, dtype, B, C, HW, eps, stream);
  else
    launch_fwd<Prologue::kGelu>(x, weight, bias, y, dtype, B, C, HW, eps, stream);
  return last_error();
}

Status layernorm2d_bwd(const void* grad_out, const void* x, const void* weight, void* grad_x, void* grad_weight,
                       void* grad_bias, void* workspace, DType dtype, int64_t B, int64_t C, int64_t HW, double eps,
                       cudaStream_t stream) {
  if (C == 0) return "";
  if (B * HW == 0) {  // no pixels: zero weight and bias gradients
    const size_t bytes = size_t(C) * elem_size(dtype);
    cudaMemsetAsync(grad_weight, 0, bytes, stream);
    cudaMemsetAsync(grad_bias, 0, bytes, stream);
    return last_error();
  }
  const int64_t chunks = w_chunks(B, C, HW);
  // The stats rows (B * HW values each) and the workspace itself must be aligned as well.
  const int n = vec_width(dtype, HW, all_aligned16(grad_out, x, grad_x, workspace));
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using Acc = typename AccOf<T>::type;
    Acc* stats = static_cast<Acc*>(workspace);
    Acc* part = stats + 2 * B * HW;
    with_width<T>(n, [&](auto nc) {
      constexpr int N = decltype(nc)::value;
      with_index(sr::imax(B * C * HW, 2 * B * HW), [&](auto itag) {
        using I = decltype(itag);
        const T* g = static_cast<const T*>(grad_out);
        const T* xt = static_cast<const T*>(x);
        for (int64_t b0 = 0; b0 < B; b0 += 65535) {
          const int64_t off = b0 * C * HW;
          SR_LAUNCH(pixel_grid(sr::imin(B - b0, 65535), HW, N), kThreads, 0, stream, bwd_x_kernel<T, I, N>)(
              g + off, xt + off, static_cast<const T*>(weight), static_cast<T*>(grad_x) + off, stats + b0 * HW,
              stats + (B + b0) * HW, I(C), I(HW), eps);
        }
        // Chunks of whole packs, so every chunk starts aligned.
        const int64_t chunk = ((HW + chunks - 1) / chunks + N - 1) / N * N;
        const unsigned nchunks = unsigned((HW + chunk - 1) / chunk);
        for (int64_t c0 = 0; c0 < C; c0 += 65535)
          for (int64_t b0 = 0; b0 < B; b0 += 65535) {
            const dim3 grid(nchunks, unsigned(sr::imin(C - c0, 65535)), unsigned(sr::imin(B - b0, 65535)));
            SR_LAUNCH(grid, kThreads, 0, stream, bwd_w_part_kernel<T, I, N>)(g, xt, stats, part, I(B), I(C), I(HW),
                                                                             I(chunk), I(c0), I(b0));
          }
        SR_LAUNCH(blocks_for(C, 64), 64, 0, stream, bwd_w_sum_kernel<T>)(
            part, static_cast<T*>(grad_weight), static_cast<T*>(grad_bias), int(C), int(B * nchunks));
      });
    });
  });
  return last_error();
}

}  // namespace sr_cuda
