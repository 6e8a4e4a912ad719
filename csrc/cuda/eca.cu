// eca CUDA kernels, the three steps of csrc/kernels/eca.h: the pooled sums as a (chunk, plane)
// grid of blocks writing per-block partials (two waves even for RT4KSR's 24 planes of
// 1920x1080), added per plane in order by a second kernel; a thread per image for the tiny
// per-image step (C * k multiply-adds); a (chunk, plane) elementwise pass. Planes are read in
// 128-bit words when H * W is a multiple of 16 bytes and the tensors are 16-byte aligned.
// The weight gradient is written per image and summed over the images in order by one
// small kernel (no atomics anywhere: deterministic).
#include "cuda/common.cuh"
#include "cuda/eca.cuh"
#include "kernels/convert.h"
#include "kernels/eca.h"

namespace sr_cuda {
namespace {

constexpr int kThreads = 256;

template <typename Acc>
__device__ Acc block_sum(Acc v, Acc* buf) {
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
    __syncthreads();
  }
  const Acc total = buf[0];
  __syncthreads();
  return total;
}

// Partial sums of x (and of g * x when g is given) over one chunk of `chunk` values (a multiple
// of N) of plane p0 + blockIdx.y, to ps / pt[plane * chunks + blockIdx.x]: the launcher makes
// enough chunks for two waves, and plane_sum_kernel adds them in order (deterministic).
template <typename T, typename I, int N>
__global__ void plane_part_kernel(const T* __restrict__ x, const T* __restrict__ g,
                                  typename AccOf<T>::type* __restrict__ ps, typename AccOf<T>::type* __restrict__ pt,
                                  I HW, I chunk, I p0) {
  using Acc = typename AccOf<T>::type;
  __shared__ Acc buf[kThreads];
  const I pl = p0 + I(blockIdx.y), lo = I(blockIdx.x) * chunk, hi = HW - lo < chunk ? HW : lo + chunk;
  const T* xp = x + pl * HW;
  const T* gp = g != nullptr ? g + pl * HW : nullptr;
  Acc sx = Acc(0), sgx = Acc(0);
  for (I e = lo + I(threadIdx.x) * N; e < hi; e += kThreads * N) {
    Acc xv[N];
    load_vec<N>(xp + e, xv);
#pragma unroll
    for (int j = 0; j < N; ++j) sx += xv[j];
    if (gp != nullptr) {
      Acc gv[N];
      load_vec<N>(gp + e, gv);
#pragma unroll
      for (int j = 0; j < N; ++j) sgx += gv[j] * xv[j];
    }
  }
  sx = block_sum(sx, buf);
  if (gp != nullptr) sgx = block_sum(sgx, buf);
  if (threadIdx.x == 0) {
    const I at = pl * I(gridDim.x) + I(blockIdx.x);
    ps[at] = sx;
    if (gp != nullptr) pt[at] = sgx;
  }
}

// s = plane means, t = plane sums of g * x (when pt is given), each plane's chunks in order.
template <typename Acc>
__global__ void plane_sum_kernel(const Acc* __restrict__ ps, const Acc* __restrict__ pt, Acc* __restrict__ s,
                                 Acc* __restrict__ t, int planes, int chunks, int64_t HW) {
  for (int pl = blockIdx.x * blockDim.x + threadIdx.x; pl < planes; pl += gridDim.x * blockDim.x) {
    Acc sx = Acc(0), sgx = Acc(0);
    for (int q = 0; q < chunks; ++q) {
      sx += ps[pl * chunks + q];
      if (pt != nullptr) sgx += pt[pl * chunks + q];
    }
    s[pl] = sx / Acc(HW);
    if (pt != nullptr) t[pl] = sgx;
  }
}

template <typename T>
__global__ void gate_kernel(const typename AccOf<T>::type* __restrict__ s, const T* __restrict__ w,
                            typename AccOf<T>::type* __restrict__ gate, int64_t B, int64_t C, int64_t k) {
  using Acc = typename AccOf<T>::type;
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < B; b += int64_t(gridDim.x) * blockDim.x)
    sr::eca_image_gates<T, Acc>(s + b * C, w, gate + b * C, C, k);
}

template <typename T>
__global__ void gate_bwd_kernel(const typename AccOf<T>::type* __restrict__ s,
                                const typename AccOf<T>::type* __restrict__ t, const T* __restrict__ w,
                                typename AccOf<T>::type* __restrict__ gate, typename AccOf<T>::type* __restrict__ da,
                                typename AccOf<T>::type* __restrict__ ds, typename AccOf<T>::type* __restrict__ gw_part,
                                int64_t B, int64_t C, int64_t HW, int64_t k) {
  using Acc = typename AccOf<T>::type;
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < B; b += int64_t(gridDim.x) * blockDim.x) {
    for (int64_t j = 0; j < k; ++j) gw_part[b * k + j] = Acc(0);
    sr::eca_image_bwd<T, Acc>(s + b * C, t + b * C, w, gate + b * C, da + b * C, ds + b * C, gw_part + b * k, C, k, HW);
  }
}

template <typename T>
__global__ void weight_sum_kernel(const typename AccOf<T>::type* __restrict__ gw_part, T* __restrict__ gw, int B,
                                  int k) {
  using Acc = typename AccOf<T>::type;
  for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < k; j += gridDim.x * blockDim.x) {
    Acc v = Acc(0);
    for (int b = 0; b < B; ++b) v += gw_part[b * k + j];
    gw[j] = sr_cast<T>(v);
  }
}

// y = x * gate[plane] (+ add[plane]): blockIdx.y is the plane p0 + blockIdx.y (no division),
// N values per thread step.
template <typename T, typename I, int N>
__global__ void apply_kernel(const T* __restrict__ x, const typename AccOf<T>::type* __restrict__ gate,
                             const typename AccOf<T>::type* __restrict__ add, T* __restrict__ y, I HW, I p0) {
  using Acc = typename AccOf<T>::type;
  const I pl = p0 + I(blockIdx.y);
  const Acc gv = gate[pl], av = add != nullptr ? add[pl] : Acc(0);
  const UIdx<I> groups = UIdx<I>(HW / N);
  for (UIdx<I> gi = grid_start<I>(); gi < groups; gi += grid_step<I>()) {
    const I e = pl * HW + I(gi) * N;
    Acc v[N];
    load_vec<N>(x + e, v);
#pragma unroll
    for (int j = 0; j < N; ++j) {
      v[j] = v[j] * gv;
      if (add != nullptr) v[j] += av;
    }
    store_vec<N>(y + e, v);
  }
}

// Chunks per plane for the pooled sums: two waves of blocks, each at least 8 values a thread.
int64_t chunks_of(int64_t planes, int64_t HW) {
  if (planes <= 0) return 1;
  const int64_t want = (kTwoWaveBlocks + planes - 1) / planes;
  const int64_t most = (HW + kThreads * 8 - 1) / (kThreads * 8);
  return want < most ? want : most;
}

// The chunk length, a whole number of packs, for `chunks` chunks of a plane.
int64_t chunk_len(int64_t HW, int64_t chunks, int n) { return ((HW + chunks - 1) / chunks + n - 1) / n * n; }

// s (and t when g is given) from the planes of x: the partials to ps / pt, then their sums.
template <typename T, typename Acc>
void pooled_sums(const T* x, const T* g, Acc* s, Acc* t, Acc* ps, Acc* pt, int64_t planes, int64_t HW, int n,
                 cudaStream_t stream) {
  const int64_t len = chunk_len(HW, chunks_of(planes, HW), n);
  const int64_t chunks = (HW + len - 1) / len;
  with_width<T>(n, [&](auto nc) {
    constexpr int N = decltype(nc)::value;
    with_index(planes * HW, [&](auto itag) {
      using I = decltype(itag);
      for (int64_t p0 = 0; p0 < planes; p0 += 65535)
        SR_LAUNCH(dim3(unsigned(chunks), unsigned(planes - p0 < 65535 ? planes - p0 : 65535)), kThreads, 0, stream,
                  plane_part_kernel<T, I, N>)(x, g, ps, pt, I(HW), I(len), I(p0));
    });
  });
  SR_LAUNCH(blocks_for(planes, 64), 64, 0, stream, plane_sum_kernel<Acc>)(ps, g != nullptr ? pt : nullptr, s, t,
                                                                          int(planes), int(chunks), HW);
}

template <typename T, typename Acc>
void apply(const T* x, const Acc* gate, const Acc* add, T* y, int64_t planes, int64_t HW, int n, cudaStream_t stream) {
  with_width<T>(n, [&](auto nc) {
    constexpr int N = decltype(nc)::value;
    with_index(planes * HW, [&](auto itag) {
      using I = decltype(itag);
      for (int64_t p0 = 0; p0 < planes; p0 += 65535)
        SR_LAUNCH(dim3(blocks_for(HW / N, kThreads), unsigned(planes - p0 < 65535 ? planes - p0 : 65535)), kThreads, 0,
                  stream, apply_kernel<T, I, N>)(x, gate, add, y, I(HW), I(p0));
    });
  });
}

}  // namespace

int64_t eca_fwd_workspace(int64_t B, int64_t C, int64_t HW) { return 2 * B * C + B * C * chunks_of(B * C, HW); }
int64_t eca_bwd_workspace(int64_t B, int64_t C, int64_t HW, int64_t k) {
  return 5 * B * C + B * k + 2 * B * C * chunks_of(B * C, HW);
}

Status eca_fwd(const void* x, const void* weight, void* y, void* workspace, DType dtype, int64_t B, int64_t C,
               int64_t HW, int64_t k, cudaStream_t stream) {
  if (B * C * HW == 0) return "";
  const int n = vec_width(dtype, HW, all_aligned16(x, y));
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using Acc = typename AccOf<T>::type;
    Acc* s = static_cast<Acc*>(workspace);
    Acc* gate = s + B * C;
    Acc* ps = gate + B * C;
    const T* xt = static_cast<const T*>(x);
    pooled_sums<T, Acc>(xt, nullptr, s, nullptr, ps, nullptr, B * C, HW, n, stream);
    SR_LAUNCH(blocks_for(B, 64), 64, 0, stream, gate_kernel<T>)(s, static_cast<const T*>(weight), gate, B, C, k);
    apply<T, Acc>(xt, gate, nullptr, static_cast<T*>(y), B * C, HW, n, stream);
  });
  return last_error();
}

Status eca_bwd(const void* grad_out, const void* x, const void* weight, void* grad_x, void* grad_weight,
               void* workspace, DType dtype, int64_t B, int64_t C, int64_t HW, int64_t k, cudaStream_t stream) {
  if (k == 0) return "";
  const int n = vec_width(dtype, HW, all_aligned16(grad_out, x, grad_x));
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using Acc = typename AccOf<T>::type;
    Acc* s = static_cast<Acc*>(workspace);
    Acc *t = s + B * C, *gate = t + B * C, *da = gate + B * C, *ds = da + B * C;
    Acc* gw_part = ds + B * C;
    Acc* ps = gw_part + B * k;
    const T* g = static_cast<const T*>(grad_out);
    if (B * C * HW > 0) {
      const int64_t chunks = chunks_of(B * C, HW);
      pooled_sums<T, Acc>(static_cast<const T*>(x), g, s, t, ps, ps + B * C * chunks, B * C, HW, n, stream);
      SR_LAUNCH(blocks_for(B, 64), 64, 0, stream, gate_bwd_kernel<T>)(s, t, static_cast<const T*>(weight), gate, da, ds,
                                                                      gw_part, B, C, HW, k);
      apply<T, Acc>(g, gate, ds, static_cast<T*>(grad_x), B * C, HW, n, stream);
    }
    // B * C == 0 sums no images: zeros.
    SR_LAUNCH(1, 64, 0, stream, weight_sum_kernel<T>)(gw_part, static_cast<T*>(grad_weight), int(B * C > 0 ? B : 0),
                                                      int(k));
  });
  return last_error();
}

}  // namespace sr_cuda
