// Stand-in for <cuda_runtime.h> under the CPU simulator of the CUDA kernels (test only).
//
// csrc/cuda/*.cu are compiled as host C++ with -DSR_CUDA_SIM and this folder first on
// the include path; launches (SR_LAUNCH) run the grid's blocks one after another, the
// threads of a block as real host threads with real barriers (sim.h).
#pragma once

#include "sim.h"
