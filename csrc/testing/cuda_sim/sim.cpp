// The simulator's scheduler: see sim.h for what it models and why.
#include "sim.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sr_sim {
namespace {

constexpr int kWarp = 32;
constexpr int kRunnable = -1, kExited = -2;  // Block::state values; >= 0: waiting at group
// A free-running barrier that waits this long has deadlocked (kernels here take ms).
constexpr auto kDeadlock = std::chrono::seconds(120);

std::atomic<int> g_schedule{-1};
std::atomic<int64_t> g_launches{0};
std::atomic<Recorder> g_recorder{nullptr};
std::mutex g_error_mu;
cudaError_t g_error = cudaSuccess;
std::string g_error_detail;

// Thrown inside a simulated thread to unwind it once its block has failed.
struct Aborted {};

Schedule from_env() {
  const char* s = std::getenv("SR_SIM_SCHEDULE");
  if (s == nullptr || std::strcmp(s, "forward") == 0) return Schedule::kForward;
  if (std::strcmp(s, "reverse") == 0) return Schedule::kReverse;
  if (std::strcmp(s, "free") == 0) return Schedule::kFree;
  std::fprintf(stderr, "sr_sim: SR_SIM_SCHEDULE=%s is not forward, reverse or free\n", s);
  std::abort();
}

}  // namespace

// Barrier groups: 0 is the block, 1 + w is warp w. An exited thread leaves its groups,
// so barriers after an early `return` wait only for the threads still running.
struct Block {
  Block(int n_, Schedule sched_, size_t smem, const char* kernel_)
      : n(n_), sched(sched_), kernel(kernel_), state(n_, kRunnable), cv(n_), slots(size_t(n_), 0), dyn(smem, 0xff) {
    const int warps = (n + kWarp - 1) / kWarp;
    live.assign(1 + warps, 0);
    arrived.assign(1 + warps, 0);
    generation.assign(1 + warps, 0);
    live[0] = n;
    for (int w = 0; w < warps; ++w) live[1 + w] = std::min(kWarp, n - w * kWarp);
    for (auto& c : cv) c = std::make_unique<std::condition_variable>();
    turn = sched == Schedule::kReverse ? n - 1 : 0;
  }

  const int n;
  const Schedule sched;
  const char* kernel;
  std::mutex mu;
  std::vector<int> live, arrived, state;
  std::vector<uint64_t> generation;
  std::vector<std::unique_ptr<std::condition_variable>> cv;  // ordered: one per thread
  std::condition_variable all;                               // free: every waiter
  std::vector<uint64_t> slots;                               // warp exchanges
  std::vector<unsigned char> dyn;                            // dynamic shared memory
  int turn;
  bool failed = false;
  std::string error;

  bool ordered() const { return sched != Schedule::kFree; }

  void fail(const std::string& why) {
    if (!failed) error = why;
    failed = true;
    for (auto& c : cv) c->notify_all();
    all.notify_all();
  }

  // Frees the threads waiting at group g once every live member has arrived.
  void maybe_release(int g) {
    if (arrived[g] == 0 || arrived[g] < live[g]) return;
    arrived[g] = 0;
    ++generation[g];
    if (ordered())
      for (int t = 0; t < n; ++t)
        if (state[t] == g) state[t] = kRunnable;
    all.notify_all();
  }

  // Ordered schedules: hands the turn to the next runnable thread after `me` in order.
  void pass_turn(int me) {
    const int step = sched == Schedule::kReverse ? -1 : 1;
    for (int i = 1; i <= n; ++i) {
      const int t = ((me + step * i) % n + n) % n;
      if (state[t] == kRunnable) {
        turn = t;
        cv[t]->notify_all();
        return;
      }
    }
    for (int t = 0; t < n; ++t)
      if (state[t] >= 0) {
        fail(
            "threads wait at barriers that the others never reach (divergent "
            "__syncthreads / warp collective)");
        return;
      }
    turn = -1;  // every thread has exited
  }

  void wait_turn(std::unique_lock<std::mutex>& lock, int me) {
    cv[me]->wait(lock, [&] { return failed || (turn == me && state[me] == kRunnable); });
    if (failed) throw Aborted{};
  }

  void arrive(int me, int g) {
    std::unique_lock<std::mutex> lock(mu);
    if (failed) throw Aborted{};
    ++arrived[g];
    if (ordered()) {
      state[me] = g;
      maybe_release(g);
      pass_turn(me);
      wait_turn(lock, me);
      return;
    }
    const uint64_t gen = generation[g];
    maybe_release(g);
    if (!all.wait_for(lock, kDeadlock, [&] { return failed || generation[g] != gen; }))
      fail("a barrier waited 120 s: deadlock");
    if (failed) throw Aborted{};
  }

  void start(int me) {
    if (!ordered()) return;
    std::unique_lock<std::mutex> lock(mu);
    wait_turn(lock, me);
  }

  void exit(int me) {
    std::lock_guard<std::mutex> lock(mu);
    const int w = 1 + me / kWarp;
    --live[0];
    --live[w];
    state[me] = kExited;
    maybe_release(0);
    maybe_release(w);
    if (ordered() && !failed) pass_turn(me);
  }

  unsigned live_lanes(int me) const {
    const int base = me / kWarp * kWarp;
    unsigned mask = 0;
    for (int l = 0; l < kWarp && base + l < n; ++l)
      if (state[base + l] != kExited) mask |= 1u << l;
    return mask;
  }

  void check_mask(int me, unsigned mask) {
    std::lock_guard<std::mutex> lock(mu);
    const int lanes = std::min(kWarp, n - me / kWarp * kWarp);
    const unsigned full = lanes == kWarp ? 0xffffffffu : (1u << lanes) - 1u;
    if ((mask & full) != full) fail("warp collective with a partial mask (not simulated)");
    if (failed) throw Aborted{};
  }
};

Schedule schedule() {
  int s = g_schedule.load();
  if (s < 0) {
    s = int(from_env());
    g_schedule.store(s);
  }
  return Schedule(s);
}

void set_schedule(Schedule s) { g_schedule.store(int(s)); }

ThreadCtx& ctx() {
  thread_local ThreadCtx c;
  return c;
}

void syncthreads() { ctx().block->arrive(ctx().tid, 0); }

void syncwarp(unsigned mask) {
  ThreadCtx& c = ctx();
  c.block->check_mask(c.tid, mask);
  c.block->arrive(c.tid, 1 + c.tid / kWarp);
}

uint64_t warp_exchange(unsigned mask, uint64_t mine, int src) {
  ThreadCtx& c = ctx();
  Block* b = c.block;
  b->check_mask(c.tid, mask);
  const int base = c.tid / kWarp * kWarp, g = 1 + c.tid / kWarp;
  b->slots[c.tid] = mine;
  b->arrive(c.tid, g);  // every lane has written
  if (base + src >= b->n) {
    std::lock_guard<std::mutex> lock(b->mu);
    b->fail("warp shuffle reads a lane beyond the block");
    throw Aborted{};
  }
  const uint64_t v = b->slots[base + src];
  b->arrive(c.tid, g);  // every lane has read before the slots are reused
  return v;
}

unsigned warp_match(unsigned mask, uint64_t mine) {
  ThreadCtx& c = ctx();
  Block* b = c.block;
  b->check_mask(c.tid, mask);
  const int base = c.tid / kWarp * kWarp, g = 1 + c.tid / kWarp;
  b->slots[c.tid] = mine;
  b->arrive(c.tid, g);
  unsigned live;
  {
    std::lock_guard<std::mutex> lock(b->mu);
    live = b->live_lanes(c.tid);
  }
  unsigned peers = 0;
  for (int l = 0; l < kWarp; ++l)
    if ((live >> l & 1u) && b->slots[base + l] == mine) peers |= 1u << l;
  b->arrive(c.tid, g);
  return peers;
}

void* dynamic_shared() { return ctx().block->dyn.data(); }

void set_error(cudaError_t e, const char* detail) {
  std::lock_guard<std::mutex> lock(g_error_mu);
  if (g_error == cudaSuccess) {
    g_error = e;
    g_error_detail = detail;
  }
  std::fprintf(stderr, "sr_sim: %s\n", detail);
}

cudaError_t take_error() {
  std::lock_guard<std::mutex> lock(g_error_mu);
  const cudaError_t e = g_error;
  g_error = cudaSuccess;
  return e;
}

const char* error_string(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unknown error";
}

bool check_config(const char* kernel, dim3 grid, dim3 block, size_t smem) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  const bool ok = threads >= 1 && threads <= 1024 && block.z <= 64 && grid.x >= 1 && grid.y >= 1 && grid.y <= 65535 &&
                  grid.z >= 1 && grid.z <= 65535 && grid.x <= 0x7fffffffu && smem <= 48 * 1024;
  if (!ok) {
    const std::string why = std::string("invalid launch configuration of ") + kernel + ": grid (" +
                            std::to_string(grid.x) + ", " + std::to_string(grid.y) + ", " + std::to_string(grid.z) +
                            "), block (" + std::to_string(block.x) + ", " + std::to_string(block.y) + ", " +
                            std::to_string(block.z) + "), " + std::to_string(smem) + " B dynamic shared memory";
    set_error(cudaErrorInvalidConfiguration, why.c_str());
  }
  return ok;
}

void run_grid(const char* kernel, dim3 grid, dim3 block, size_t smem, const std::function<void()>& body) {
  ++g_launches;
  const int n = int(block.x * block.y * block.z);
  const Schedule sched = schedule();
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        Block blk(n, sched, smem, kernel);
        std::vector<std::thread> threads;
        threads.reserve(size_t(n));
        for (int t = 0; t < n; ++t)
          threads.emplace_back([&, t] {
            ThreadCtx& c = ctx();
            c.block = &blk;
            c.tid = t;
            c.block_dim = block;
            c.grid_dim = grid;
            c.block_idx = {bx, by, bz};
            c.thread_idx = {t % block.x, t / block.x % block.y, t / (block.x * block.y)};
            try {
              blk.start(t);
              body();
            } catch (const Aborted&) {}
            blk.exit(t);
            c.block = nullptr;
          });
        for (auto& th : threads) th.join();
        if (blk.failed) {
          const std::string why = std::string(kernel) + ": " + blk.error;
          set_error(cudaErrorLaunchFailure, why.c_str());
          return;
        }
      }
}

int64_t launch_count() { return g_launches.load(); }

void set_recorder(Recorder r) { g_recorder.store(r); }

Recorder recorder() { return g_recorder.load(); }

}  // namespace sr_sim
