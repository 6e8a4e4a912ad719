// Stand-in for <cuda_fp16.h> under the CPU simulator: storage plus the two explicit
// conversions. Like torch's CUDA build (-D__CUDA_NO_HALF_CONVERSIONS__ and friends) it has
// no implicit conversions and no operators, so code that relies on them fails here too.
#pragma once

#include <cstdint>
#include <cstring>

struct __half {
  uint16_t bits = 0;
};

inline float __half2float(__half h) {
  _Float16 v;
  std::memcpy(&v, &h.bits, sizeof v);
  return static_cast<float>(v);
}

inline __half __float2half_rn(float f) {
  const _Float16 v = static_cast<_Float16>(f);  // round to nearest even, as the hardware
  __half h;
  std::memcpy(&h.bits, &v, sizeof v);
  return h;
}

inline __half __float2half(float f) { return __float2half_rn(f); }
