// CPU kernel of to_channels_last: a (B, C, H, W) map copied to channels-last memory, i.e.
// each image's (C, H*W) matrix transposed. ATen's strided copy of a 1x64x256x256 float map
// takes ~6 ms on two cores, against ~1 ms for a plain clone; this one ~1.5 ms. Here OpenMP runs over (image, block of kBlock
// pixels) jobs, and values move as raw 1/2/4/8-byte words: every dtype, bit for bit.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "check.h"
#include "cpu/clones.h"
#include "cpu/dispatch.h"

namespace {

constexpr int64_t kBlock = 64;  // pixels per job: their (kBlock, C) output block stays in L1

// dst (HW, C) = src (C, HW)^T for one image, pixels [p0, p1): each channel's run of pixels
// is read contiguously, and written into the block of the job's pixels, which stays in cache.
template <typename W>
void transpose_block(const W* src, W* dst, int64_t C, int64_t HW, int64_t p0, int64_t p1) {
  for (int64_t c = 0; c < C; ++c) {
    const W* s = src + c * HW;
    for (int64_t p = p0; p < p1; ++p) dst[p * C + c] = s[p];
  }
}

typedef uint32_t u32x8 __attribute__((vector_size(32)));
typedef int32_t i32x8 __attribute__((vector_size(32)));

inline u32x8 load8(const uint32_t* p) {
  u32x8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// 4-byte words with C a multiple of 8: 8 x 8 tiles transposed in registers (the unpack,
// shuffle and lane-permute steps of the usual AVX transpose, as GCC vector shuffles), so a
// pixel's eight channels leave in one store instead of eight: the scalar loop above is
// store-bound (~4 ms for a 1x64x256x256 float map on two cores).
SR_CPU_CLONES void transpose_block_u32x8(const uint32_t* src, uint32_t* dst, int64_t C, int64_t HW, int64_t p0,
                                         int64_t p1) {
  const int64_t pv = p0 + (p1 - p0) / 8 * 8;
  for (int64_t c0 = 0; c0 < C; c0 += 8) {
    for (int64_t p = p0; p < pv; p += 8) {
      u32x8 r[8], t[8], u[8];
      for (int i = 0; i < 8; ++i) r[i] = load8(src + (c0 + i) * HW + p);
      for (int i = 0; i < 8; i += 2) {
        t[i] = __builtin_shuffle(r[i], r[i + 1], i32x8{0, 8, 1, 9, 4, 12, 5, 13});
        t[i + 1] = __builtin_shuffle(r[i], r[i + 1], i32x8{2, 10, 3, 11, 6, 14, 7, 15});
      }
      for (int i = 0; i < 8; i += 4) {
        u[i] = __builtin_shuffle(t[i], t[i + 2], i32x8{0, 1, 8, 9, 4, 5, 12, 13});
        u[i + 1] = __builtin_shuffle(t[i], t[i + 2], i32x8{2, 3, 10, 11, 6, 7, 14, 15});
        u[i + 2] = __builtin_shuffle(t[i + 1], t[i + 3], i32x8{0, 1, 8, 9, 4, 5, 12, 13});
        u[i + 3] = __builtin_shuffle(t[i + 1], t[i + 3], i32x8{2, 3, 10, 11, 6, 7, 14, 15});
      }
      // u[j] (j < 4) holds pixels j and j + 4 of channels c0..c0+3; u[j + 4] of c0+4..c0+7
      for (int j = 0; j < 4; ++j) {
        const u32x8 lo = __builtin_shuffle(u[j], u[j + 4], i32x8{0, 1, 2, 3, 8, 9, 10, 11});
        const u32x8 hi = __builtin_shuffle(u[j], u[j + 4], i32x8{4, 5, 6, 7, 12, 13, 14, 15});
        std::memcpy(dst + (p + j) * C + c0, &lo, sizeof lo);
        std::memcpy(dst + (p + j + 4) * C + c0, &hi, sizeof hi);
      }
    }
    for (int64_t p = pv; p < p1; ++p)
      for (int64_t c = c0; c < c0 + 8; ++c) dst[p * C + c] = src[c * HW + p];
  }
}

template <typename W>
void run(const at::Tensor& x, at::Tensor& out) {
  const int64_t B = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const W* src = static_cast<const W*>(x.const_data_ptr());
  W* dst = static_cast<W*>(out.mutable_data_ptr());
  const int64_t blocks = (HW + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (sr_cpu::worth_threads(B * C * HW))
  for (int64_t job = 0; job < B * blocks; ++job) {
    const int64_t b = job / blocks, p0 = (job % blocks) * kBlock, p1 = std::min(HW, p0 + kBlock);
    if constexpr (sizeof(W) == 4) {
      if (C % 8 == 0) {
        transpose_block_u32x8(src + b * C * HW, dst + b * C * HW, C, HW, p0, p1);
        continue;
      }
    }
    transpose_block<W>(src + b * C * HW, dst + b * C * HW, C, HW, p0, p1);
  }
}

at::Tensor to_channels_last_cpu(const at::Tensor& x_in) {
  TORCH_CHECK_VALUE(x_in.device().is_cpu(), "x must be a CPU tensor, got ", x_in.device());
  sr_check::dims(x_in, "x", 4, "(B, C, H, W)");
  if (x_in.is_contiguous(at::MemoryFormat::ChannelsLast))
    return x_in;  // nothing to move (as Tensor.contiguous(memory_format=torch.channels_last))
  const at::Tensor x = x_in.contiguous();
  at::Tensor out = at::empty_like(x, at::MemoryFormat::ChannelsLast);
  if (x.numel() == 0) return out;
  switch (x.element_size()) {
    case 1: run<uint8_t>(x, out); break;
    case 2: run<uint16_t>(x, out); break;
    case 4: run<uint32_t>(x, out); break;
    case 8: run<uint64_t>(x, out); break;
    default: return x.contiguous(at::MemoryFormat::ChannelsLast);  // complex128: ATen's copy
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(sr_ops, m) {
  // x (B, C, H, W), any dtype -> the same values in channels-last memory. CPU only: on a GPU
  // torch's own copy kernel is already bandwidth-bound (sr_ops/_build_check.py lists it).
  m.def("_to_channels_last_fwd(Tensor x) -> Tensor");
}

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) { m.impl("_to_channels_last_fwd", &to_channels_last_cpu); }
