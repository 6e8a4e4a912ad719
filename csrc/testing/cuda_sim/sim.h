// A CPU simulator for the CUDA kernels in csrc/cuda (test only; see README.md here).
//
// Under -DSR_CUDA_SIM the .cu files compile as host C++ against this header:
// - a launch, SR_LAUNCH(grid, block, smem, stream, kernel)(args), runs the grid's blocks
//   one after another and the threads of a block as real host threads;
// - __syncthreads and the warp collectives are real barriers among those threads;
// - __shared__ is `static`: one instance per kernel, which is per block because blocks
//   run in turn; dynamic shared memory (SR_DYNAMIC_SHARED) is a per-block buffer filled
//   with 0xff bytes, so an unwritten float reads as NaN;
// - atomicAdd is std::atomic_ref::fetch_add.
//
// Record mode (set_recorder, from Python torch.ops.sr_ops_cudasim._sim_record): a launch
// hands its configuration and pointer arguments to the recorder and its body does not run,
// so the launches of a full-size workload are seen in moments (sr_ops/bench/roofline_cuda.py).
//
// Schedules (set_schedule, or SR_SIM_SCHEDULE=forward|reverse|free):
// - forward / reverse: one thread runs at a time, in thread order (or reverse), each
//   until its next barrier or its end. A barrier missing between a shared-memory write
//   and another thread's read then deterministically reads the old contents: forward
//   catches reads of higher-numbered threads' slots, reverse of lower-numbered ones.
// - free: all threads run at once (std::mutex/condition_variable barriers), for
//   ThreadSanitizer, which reports the data race a missing barrier leaves.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <source_location>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

typedef struct CUstream_st* cudaStream_t;

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchFailure = 719,
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

struct uint3 {
  unsigned x, y, z;
};

namespace sr_sim {

enum class Schedule : int { kForward = 0, kReverse = 1, kFree = 2 };

Schedule schedule();
void set_schedule(Schedule s);

struct Block;

// The simulated CUDA thread this host thread is running.
struct ThreadCtx {
  uint3 thread_idx{0, 0, 0}, block_idx{0, 0, 0};
  dim3 block_dim, grid_dim;
  Block* block = nullptr;
  int tid = 0;  // linear thread index in the block
};

ThreadCtx& ctx();

void syncthreads();
void syncwarp(unsigned mask);
// Lane `src`'s value of this warp-wide exchange; `mask` must name every live lane.
uint64_t warp_exchange(unsigned mask, uint64_t mine, int src);
// Mask of the live lanes whose value equals this lane's.
unsigned warp_match(unsigned mask, uint64_t mine);
void* dynamic_shared();

// Kernel launches: the last error, as cudaGetLastError reports it.
void set_error(cudaError_t e, const char* detail);
cudaError_t take_error();
const char* error_string(cudaError_t e);

bool check_config(const char* kernel, dim3 grid, dim3 block, size_t smem);
void run_grid(const char* kernel, dim3 grid, dim3 block, size_t smem, const std::function<void()>& body);
// Number of launches run so far (tests check that a kernel really ran).
int64_t launch_count();

// A launch as record mode sees it.
struct LaunchInfo {
  const char* kernel;  // the SR_LAUNCH kernel text, e.g. "fwd_kernel<T>"
  const char* file;    // the file holding the SR_LAUNCH
  dim3 grid, block;
  size_t smem;
  std::vector<const void*> pointers;  // the pointer parameters' values, in order
  int struct_params = 0;              // class-type parameters, whose members are not looked into
};
using Recorder = void (*)(const LaunchInfo&);
// Record mode while a recorder is set (nullptr: launches run again).
void set_recorder(Recorder r);
Recorder recorder();

template <class T>
void note_param(LaunchInfo& info, const T& v) {
  if constexpr (std::is_pointer_v<T>)
    info.pointers.push_back(static_cast<const void*>(v));
  else if constexpr (std::is_class_v<T>)
    ++info.struct_params;
}

template <class... P>
struct Launcher {
  dim3 grid, block;
  size_t smem;
  const char* name;
  const char* file;
  void (*fn)(P...);

  template <class... A>
  void operator()(A&&... args) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong argument count");
    // Converted once, as CUDA copies the arguments at launch; each thread's call copies
    // them again into its own parameters.
    const std::tuple<std::decay_t<P>...> params(static_cast<P>(std::forward<A>(args))...);
    if (!check_config(name, grid, block, smem)) return;
    if (const Recorder rec = recorder()) {
      LaunchInfo info{name, file, grid, block, smem, {}, 0};
      std::apply([&](const auto&... p) { (note_param(info, p), ...); }, params);
      rec(info);
      return;
    }
    run_grid(name, grid, block, smem, [&] { std::apply(fn, params); });
  }
};

// `where` defaults at the call site: the SR_LAUNCH's own file, which names the kernel's op.
template <class... P>
Launcher<P...> Launch(dim3 grid, dim3 block, size_t smem, cudaStream_t, const char* name, void (*fn)(P...),
                      std::source_location where = std::source_location::current()) {
  return {grid, block, smem, name, where.file_name(), fn};
}

template <class T>
uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable_v<T>);
  uint64_t u = 0;
  std::memcpy(&u, &v, sizeof v);
  return u;
}

template <class T>
T from_bits(uint64_t u) {
  T v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

}  // namespace sr_sim

#define threadIdx (::sr_sim::ctx().thread_idx)
#define blockIdx (::sr_sim::ctx().block_idx)
#define blockDim (::sr_sim::ctx().block_dim)
#define gridDim (::sr_sim::ctx().grid_dim)
#define warpSize 32

inline void __syncthreads() { sr_sim::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { sr_sim::syncwarp(mask); }

template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const int lane = sr_sim::ctx().tid % 32;
  const int src = (lane & ~(width - 1)) | ((lane ^ lane_mask) & (width - 1));
  return sr_sim::from_bits<T>(sr_sim::warp_exchange(mask, sr_sim::to_bits(v), src));
}

template <class T>
unsigned __match_any_sync(unsigned mask, T v) {
  return sr_sim::warp_match(mask, sr_sim::to_bits(v));
}

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }

template <class T, class U>
T atomicAdd(T* address, U value) {
  return std::atomic_ref<T>(*address).fetch_add(static_cast<T>(value), std::memory_order_relaxed);
}

inline cudaError_t cudaGetLastError() { return sr_sim::take_error(); }
inline const char* cudaGetErrorString(cudaError_t e) { return sr_sim::error_string(e); }

inline cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
  if (bytes > 0 && p == nullptr) return cudaErrorInvalidValue;
  std::memset(p, value, bytes);
  return cudaSuccess;
}
