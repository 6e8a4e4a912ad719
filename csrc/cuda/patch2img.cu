// patch2img CUDA kernels, output-stationary gathers (no atomics). Forward: blockIdx.y is the
// (b, c) plane, a thread per N neighbouring output pixels of it; backward: blockIdx.y is the
// (b, l, c) patch plane, a thread per N neighbouring patch elements. N = 16 bytes of T when
// the plane length is a multiple of it and the output 16-byte aligned (one 128-bit store;
// the inputs are gathered a value at a time), else 1. The arithmetic is sr::patch2img_pixel
// and sr::patch2img_grad_element's (csrc/kernels/patch2img.h, the CPU kernel's), in the
// index type I: 32-bit below 2^31 elements, so no 64-bit division.
#include "cuda/common.cuh"
#include "cuda/patch2img.cuh"
#include "kernels/patch2img.h"

namespace sr_cuda {
namespace {

constexpr int kThreads = 256;

// sr::cover_range in I: grid positions [lo, hi] (m of them, stride t) whose window holds y.
template <typename I>
__device__ __forceinline__ void cover(I y, I p, I t, I m, I* lo, I* hi) {
  *lo = y < p ? I(0) : (y - p) / t + 1;
  const I h = y / t;
  *hi = h < m - 1 ? h : m - 1;
}

template <typename I>
struct Dims {
  I L, C, P, H, W, T, m1, m2;
};

template <typename I>
Dims<I> dims_of(const sr::Patch2ImgDims& d) {
  return {I(d.L), I(d.C), I(d.P), I(d.H), I(d.W), I(d.T), I(d.m1), I(d.m2)};
}

template <typename T, typename I, int N>
__global__ void fwd_kernel(const T* __restrict__ patches, T* __restrict__ out, Dims<I> d, I p0) {
  using Acc = typename AccOf<T>::type;
  const I plane = p0 + I(blockIdx.y), b = plane / d.C, c = plane - b * d.C, HW = d.H * d.W, PP = d.P * d.P;
  const UIdx<I> groups = UIdx<I>(HW / N);
  for (UIdx<I> gi = grid_start<I>(); gi < groups; gi += grid_step<I>()) {
    const I e = I(gi) * N;
    I y = e / d.W, x = e - y * d.W;
    Acc v[N];
#pragma unroll
    for (int j = 0; j < N; ++j) {
      I i0, i1, j0, j1;
      cover(y, d.P, d.T, d.m1, &i0, &i1);
      cover(x, d.P, d.T, d.m2, &j0, &j1);
      Acc sum = Acc(0);
      for (I i = i0; i <= i1; ++i)
        for (I jj = j0; jj <= j1; ++jj)
          sum +=
              sr_cast<Acc>(patches[((b * d.L + i * d.m2 + jj) * d.C + c) * PP + (y - d.T * i) * d.P + (x - d.T * jj)]);
      // Uncovered pixels are 0 (sum 0, divided by the count 1).
      v[j] = i1 < i0 || j1 < j0 ? Acc(0) : sum / Acc((i1 - i0 + 1) * (j1 - j0 + 1));
      if (++x == d.W) x = 0, ++y;
    }
    store_vec<N>(out + plane * HW + e, v);
  }
}

template <typename I>
__device__ __forceinline__ I cover_count(I y, I p, I t, I m) {
  I lo, hi;
  cover(y, p, t, m, &lo, &hi);
  return hi >= lo ? hi - lo + 1 : I(0);
}

template <typename T, typename I, int N>
__global__ void bwd_kernel(const T* __restrict__ grad_out, T* __restrict__ grad_patches, Dims<I> d, I p0) {
  using Acc = typename AccOf<T>::type;
  // plane = (b * L + l) * C + c
  const I plane = p0 + I(blockIdx.y), c = plane % d.C, bl = plane / d.C, b = bl / d.L, l = bl - b * d.L;
  const I li = l / d.m2, lj = l - li * d.m2, PP = d.P * d.P;
  const UIdx<I> groups = UIdx<I>(PP / N);
  for (UIdx<I> gi = grid_start<I>(); gi < groups; gi += grid_step<I>()) {
    const I e = I(gi) * N;
    I py = e / d.P, px = e - py * d.P;
    Acc v[N];
#pragma unroll
    for (int j = 0; j < N; ++j) {
      const I y = d.T * li + py, x = d.T * lj + px;
      const Acc n = Acc(cover_count(y, d.P, d.T, d.m1) * cover_count(x, d.P, d.T, d.m2));
      v[j] = sr_cast<Acc>(grad_out[((b * d.C + c) * d.H + y) * d.W + x]) / n;
      if (++px == d.P) px = 0, ++py;
    }
    store_vec<N>(grad_patches + plane * PP + e, v);
  }
}

unsigned slice(int64_t n, int64_t at) { return unsigned(n - at < 65535 ? n - at : 65535); }

}  // namespace

Status patch2img_fwd(const void* patches, void* out, DType dtype, int64_t B, int64_t C, int64_t H, int64_t W, int64_t P,
                     int64_t stride, cudaStream_t stream) {
  const auto d = sr::patch2img_dims(B, C, H, W, P, stride);
  const int64_t n = B * C * H * W, planes = B * C;
  if (n == 0) return "";
  const int vn = vec_width(dtype, H * W, aligned16(out));
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    with_width<T>(vn, [&](auto nc) {
      constexpr int N = decltype(nc)::value;
      with_index(sr::imax(n, B * d.L * C * P * P), [&](auto itag) {
        using I = decltype(itag);
        for (int64_t p0 = 0; p0 < planes; p0 += 65535)
          SR_LAUNCH(dim3(blocks_for(H * W / N, kThreads), slice(planes, p0)), kThreads, 0, stream, fwd_kernel<T, I, N>)(
              static_cast<const T*>(patches), static_cast<T*>(out), dims_of<I>(d), I(p0));
      });
    });
  });
  return last_error();
}

Status patch2img_bwd(const void* grad_out, void* grad_patches, DType dtype, int64_t B, int64_t C, int64_t H, int64_t W,
                     int64_t P, int64_t stride, cudaStream_t stream) {
  const auto d = sr::patch2img_dims(B, C, H, W, P, stride);
  const int64_t n = B * d.L * C * P * P, planes = B * d.L * C;
  if (n == 0) return "";
  const int vn = vec_width(dtype, P * P, aligned16(grad_patches));
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    with_width<T>(vn, [&](auto nc) {
      constexpr int N = decltype(nc)::value;
      with_index(sr::imax(n, B * C * H * W), [&](auto itag) {
        using I = decltype(itag);
        for (int64_t p0 = 0; p0 < planes; p0 += 65535)
          SR_LAUNCH(dim3(blocks_for(P * P / N, kThreads), slice(planes, p0)), kThreads, 0, stream, bwd_kernel<T, I, N>)(
              static_cast<const T*>(grad_out), static_cast<T*>(grad_patches), dims_of<I>(d), I(p0));
      });
    });
  });
  return last_error();
}

}  // namespace sr_cuda
