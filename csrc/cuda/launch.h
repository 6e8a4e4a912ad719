// Torch-free launcher interface between the .cu kernels and the *_glue.cpp files.
// Plain C++ (no CUDA headers needed by the glue side): tensors travel as raw
// pointers plus a dtype tag, streams as the opaque cudaStream_t handle.
#pragma once

#include <cstdint>

typedef struct CUstream_st* cudaStream_t;

namespace sr_cuda {

enum class DType : int { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

// Returns an empty string on success, else the CUDA error text.
using Status = const char*;

}  // namespace sr_cuda
