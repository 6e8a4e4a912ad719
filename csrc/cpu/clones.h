// SR_CPU_CLONES: the hot loops are built twice, for AVX2 and for the baseline ISA, and
// picked when the library loads (GCC function multi-versioning); the build itself stays
// portable, as torch's own kernels do with their runtime dispatch.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SR_CPU_CLONES __attribute__((target_clones("avx2", "default")))
// For float-only vector math (GELU's rational erf): AVX's eight-float registers plus fused
// multiply-adds, which GCC contracts a * b + c into (one rounding instead of two).
#define SR_CPU_CLONES_FMA __attribute__((target_clones("fma", "default")))
#else
#define SR_CPU_CLONES
#define SR_CPU_CLONES_FMA
#endif
