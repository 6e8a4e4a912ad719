// gather_patches CUDA kernels and the crop / paste blocks shared with extract and merge.
// Both are output-stationary, with no atomics. A crop thread copies four consecutive
// elements of a window row (one 128-bit access each side for float when aligned). A paste
// block owns one kPasteTileH x kPasteTileW tile of the image, a thread four pixels of a tile
// row; each pixel sums the windows the glue binned into its tile in ascending sequence
// position, so every run gives the same bits. Offsets are 32-bit unless a tensor holds
// 2^31 elements or more (the Idx template, chosen at launch).
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/gather_patches.cuh"
#include "kernels/convert.h"
#include "kernels/gather_patches.h"
#include "kernels/merge_patches.h"

namespace sr_cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kPasteThreads = kPasteTileH * kPasteTileW / 4;

// Paste accumulator: double for float/double, float for the half types (exact sums of
// equal values, so averaging identical overlaps returns the value bit for bit).
template <typename T>
struct PasteAccOf {
  using type = float;
};
template <>
struct PasteAccOf<float> {
  using type = double;
};
template <>
struct PasteAccOf<double> {
  using type = double;
};

// Four consecutive elements, accessed at once (ld/st.global.v4 for float, two v2 for double).
template <typename T>
struct alignas(4 * sizeof(T)) Quad {
  T v[4];
};

template <typename T>
__device__ __forceinline__ Quad<T> load_quad(const T* p) {
  return *reinterpret_cast<const Quad<T>*>(p);
}

template <typename T>
__device__ __forceinline__ void store_quad(T* p, const Quad<T>& q) {
  *reinterpret_cast<Quad<T>*>(p) = q;
}

inline bool aligned_quad(const void* p, int64_t elem_size) {
  return reinterpret_cast<uintptr_t>(p) % uintptr_t(4 * elem_size) == 0;
}

// Thread t copies quad t of the (N * C * Q) window rows of ceil(Q / 4) quads each. `vec`:
// Q % 4 == 0 and every pointer quad-aligned; a quad then goes vector wherever its source
// is aligned too (the window's column a multiple of 4, W too).
template <typename T, typename Acc, typename Idx>
__global__ void __launch_bounds__(kThreads)
    crop_kernel(const T* __restrict__ src, T* __restrict__ dst, const int64_t* __restrict__ coords,
                const int64_t* __restrict__ order, const int32_t* __restrict__ count, Idx n_quads, int C, int H, int W,
                int Q, int scale, bool vec) {
  const int G = (Q + 3) / 4;
  for (Idx t = Idx(blockIdx.x) * blockDim.x + threadIdx.x; t < n_quads; t += Idx(gridDim.x) * blockDim.x) {
    const Idx row = t / G, ic = row / Q, i = ic / C;
    const int px = int(t - row * G) * 4, py = int(row - ic * Q), c = int(ic - i * C);
    const int64_t* w = coords + 3 * order[i];
    const int b = int(w[0]), y = scale * int(w[1]) + py, x = scale * int(w[2]) + px;
    const Idx s = ((Idx(b) * C + c) * H + y) * W + x, k = (Idx(b) * H + y) * W + x;
    const int m = Q - px < 4 ? Q - px : 4;
    Quad<T> v;
    if (vec && (s & 3) == 0) {
      v = load_quad(src + s);
    } else {
      for (int e = 0; e < m; ++e) v.v[e] = src[s + e];
    }
    if (count != nullptr) {  // merge's backward: each pixel divided by its coverage
      Quad<int32_t> n;
      if (vec && (k & 3) == 0) {
        n = load_quad(count + k);
      } else {
        for (int e = 0; e < m; ++e) n.v[e] = count[k + e];
      }
      for (int e = 0; e < m; ++e) v.v[e] = sr::merge_grad<T, Acc>(v.v[e], n.v[e]);
    }
    T* d = dst + row * Q + px;
    if (vec) {
      store_quad(d, v);
    } else {
      for (int e = 0; e < m; ++e) d[e] = v.v[e];
    }
  }
}

// One block per (tile, channel stride); thread: a quad of pixels of one tile row. `vec_src`:
// Q % 4 == 0 and src quad-aligned (a window whose column is a multiple of 4 is then read a
// quad at a time); `vec_dst`: W % 4 == 0 and dst quad-aligned. With src null the block
// writes the (B, H, W) int32 coverage count to `count` instead.
template <typename T, typename Acc, typename Idx>
__global__ void __launch_bounds__(kPasteThreads)
    paste_kernel(const T* __restrict__ src, T* __restrict__ dst, int32_t* __restrict__ count,
                 const int32_t* __restrict__ wy, const int32_t* __restrict__ wx, const int32_t* __restrict__ start,
                 const int32_t* __restrict__ win, int C, int H, int W, int Q, int tiles_y, int tiles_x, bool mean,
                 bool vec_src, bool vec_dst) {
  constexpr int kQuadsPerRow = kPasteTileW / 4;
  const int tile = blockIdx.x, rest = tile / tiles_x, tx = tile - rest * tiles_x;
  const int b = rest / tiles_y, ty = rest - b * tiles_y;
  const int y = ty * kPasteTileH + int(threadIdx.x) / kQuadsPerRow;
  const int x = tx * kPasteTileW + (int(threadIdx.x) % kQuadsPerRow) * 4;
  if (y >= H || x >= W) return;
  const int k0 = start[tile], k1 = start[tile + 1];
  const Idx plane = Idx(Q) * Q;
  for (int c = blockIdx.y; c < C; c += gridDim.y) {
    Acc acc[4] = {Acc(0), Acc(0), Acc(0), Acc(0)};
    int n[4] = {0, 0, 0, 0};
    for (int k = k0; k < k1; ++k) {  // ascending sequence position: a fixed order per pixel
      const int i = win[k], py = y - wy[i], px = x - wx[i];
      if (unsigned(py) >= unsigned(Q) || px <= -4 || px >= Q) continue;
      if (src == nullptr) {
        for (int e = 0; e < 4; ++e) n[e] += unsigned(px + e) < unsigned(Q);
        continue;
      }
      const T* row = src + (Idx(i) * C + c) * plane + Idx(py) * Q;
      if (vec_src && px >= 0 && (px & 3) == 0) {  // Q % 4 == 0: the whole quad lies inside
        const Quad<T> v = load_quad(row + px);
        for (int e = 0; e < 4; ++e) {
          acc[e] += sr_cast<Acc>(v.v[e]);
          ++n[e];
        }
      } else {
        for (int e = 0; e < 4; ++e) {
          if (unsigned(px + e) < unsigned(Q)) {
            acc[e] += sr_cast<Acc>(row[px + e]);
            ++n[e];
          }
        }
      }
    }
    if (src == nullptr) {
      int32_t* o = count + (Idx(b) * H + y) * W + x;
      if (vec_dst) {
        store_quad(o, Quad<int32_t>{{n[0], n[1], n[2], n[3]}});
      } else {
        for (int e = 0; e < 4 && x + e < W; ++e) o[e] = n[e];
      }
      continue;
    }
    Quad<T> v;
    for (int e = 0; e < 4; ++e) v.v[e] = mean ? sr::merge_pixel<T, Acc>(acc[e], n[e]) : sr_cast<T>(acc[e]);
    T* o = dst + ((Idx(b) * C + c) * H + y) * W + x;
    if (vec_dst) {
      store_quad(o, v);
    } else {
      for (int e = 0; e < 4 && x + e < W; ++e) o[e] = v.v[e];
    }
  }
}

constexpr int64_t kInt32Limit = int64_t(1) << 31;

}  // namespace

Status crop_windows(const void* src, void* dst, DType dtype, const int64_t* coords, const int64_t* order,
                    const int32_t* count, int64_t N, int64_t B, int64_t C, int64_t H, int64_t W, int64_t Q,
                    int64_t scale, cudaStream_t stream) {
  const int64_t n = N * C * Q * ((Q + 3) / 4);
  if (n == 0) return "";
  const unsigned blocks = blocks_for(n, kThreads);
  // The grid-stride loop's last step must not overflow the 32-bit counter either.
  const bool big =
      N * C * Q * Q >= kInt32Limit || B * C * H * W >= kInt32Limit || n + int64_t(blocks) * kThreads >= kInt32Limit;
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using Acc = typename AccOf<T>::type;
    const bool vec = Q % 4 == 0 && aligned_quad(src, sizeof(T)) && aligned_quad(dst, sizeof(T)) &&
                     (count == nullptr || aligned_quad(count, sizeof(int32_t)));
    const T* s = static_cast<const T*>(src);
    T* d = static_cast<T*>(dst);
    if (big) {
      SR_LAUNCH(blocks, kThreads, 0, stream, crop_kernel<T, Acc, int64_t>)(s, d, coords, order, count, n, C, H, W, Q,
                                                                           scale, vec);
    } else {
      SR_LAUNCH(blocks, kThreads, 0, stream, crop_kernel<T, Acc, int32_t>)(s, d, coords, order, count, n, C, H, W, Q,
                                                                           scale, vec);
    }
  });
  return last_error();
}

Status paste_windows(const void* src, void* dst, DType dtype, const PasteIndex& ix, int64_t N, int64_t B, int64_t C,
                     int64_t H, int64_t W, int64_t Q, bool mean, cudaStream_t stream) {
  if (B * C * H * W == 0) return "";
  if (src == nullptr) C = 1;
  const bool big = N * C * Q * Q >= kInt32Limit || B * C * H * W >= kInt32Limit;
  const dim3 grid(unsigned(B * ix.tiles_y * ix.tiles_x), unsigned(C < 65535 ? C : 65535));
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using Acc = typename PasteAccOf<T>::type;
    const bool vec_src = src != nullptr && Q % 4 == 0 && aligned_quad(src, sizeof(T));
    const bool vec_dst = W % 4 == 0 && aligned_quad(dst, src != nullptr ? sizeof(T) : sizeof(int32_t));
    const T* s = static_cast<const T*>(src);
    T* d = src != nullptr ? static_cast<T*>(dst) : nullptr;
    int32_t* cnt = src != nullptr ? nullptr : static_cast<int32_t*>(dst);
    if (big) {
      SR_LAUNCH(grid, kPasteThreads, 0, stream, paste_kernel<T, Acc, int64_t>)(
          s, d, cnt, ix.wy, ix.wx, ix.start, ix.win, C, H, W, Q, ix.tiles_y, ix.tiles_x, mean, vec_src, vec_dst);
    } else {
      SR_LAUNCH(grid, kPasteThreads, 0, stream, paste_kernel<T, Acc, int32_t>)(
          s, d, cnt, ix.wy, ix.wx, ix.start, ix.win, C, H, W, Q, ix.tiles_y, ix.tiles_x, mean, vec_src, vec_dst);
    }
  });
  return last_error();
}

}  // namespace sr_cuda
