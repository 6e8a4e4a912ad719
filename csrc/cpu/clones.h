// SR_CPU_CLONES: the hot loops are built twice, for AVX2 and for the baseline ISA, and
// picked when the library loads (GCC function multi-versioning); the build itself stays
// portable, as torch's own kernels do with their runtime dispatch.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SR_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SR_CPU_CLONES
#endif
