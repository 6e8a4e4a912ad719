// Record mode: every launch is written down instead of run (sim.h), with the sizes of the
// memory allocations its pointer arguments point into, for sr_ops/bench/roofline_cuda.py.
//
// The sizes come from a CPU allocator installed while recording that keeps the live
// (pointer, size) pairs; a launch counts each allocation it touches once, from its lowest
// pointer into it to the allocation's end: an upper bound on the bytes the launch reads or
// writes. Tensors must therefore be allocated after recording starts; a pointer into
// anything else counts as "unknown".
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

// After torch's headers: sim.h's CUDA keyword macros are for the kernels' files.
#include "sim.h"

namespace {

class TrackingAllocator final : public c10::Allocator {
 public:
  explicit TrackingAllocator(c10::Allocator* inner) : inner_(inner) {}

  c10::DataPtr allocate(size_t n) override {
    c10::DataPtr data = inner_->allocate(n);
    void* p = data.get();
    const c10::Device device = data.device();
    if (p == nullptr || n == 0) return data;
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_[reinterpret_cast<uintptr_t>(p)] = n;
    }
    // The inner allocation travels in the context, so freeing it forgets it here first.
    return {p, new Held{std::move(data), this}, &release, device};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

  // The live allocation holding p: its start and size; size 0 when there is none.
  std::pair<uintptr_t, size_t> find(const void* p) const {
    const auto u = reinterpret_cast<uintptr_t>(p);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.upper_bound(u);
    if (it == live_.begin()) return {0, 0};
    --it;
    if (u >= it->first + it->second) return {0, 0};
    return *it;
  }

  c10::Allocator* inner() const { return inner_; }

 private:
  struct Held {
    c10::DataPtr data;
    TrackingAllocator* owner;
  };

  static void release(void* ctx) {
    auto* held = static_cast<Held*>(ctx);
    {
      std::lock_guard<std::mutex> lock(held->owner->mu_);
      held->owner->live_.erase(reinterpret_cast<uintptr_t>(held->data.get()));
    }
    delete held;
  }

  c10::Allocator* inner_;
  mutable std::mutex mu_;
  std::map<uintptr_t, size_t> live_;
};

// Never freed: tensors allocated while recording may outlive it, and their deleter is its.
TrackingAllocator* g_tracker = nullptr;
std::mutex g_mu;
std::vector<std::string> g_records;

std::string triple(dim3 d) {
  return "[" + std::to_string(d.x) + ", " + std::to_string(d.y) + ", " + std::to_string(d.z) + "]";
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

void on_launch(const sr_sim::LaunchInfo& info) {
  // Per allocation, the bytes from the lowest pointer into it to its end: a workspace that
  // holds a map and a small table after it counts as the table alone for a launch given
  // only the table's pointer.
  std::vector<std::pair<uintptr_t, size_t>> seen;  // (allocation start, extent)
  int unknown = 0;
  for (const void* p : info.pointers) {
    if (p == nullptr) continue;
    const auto [start, size] = g_tracker->find(p);
    if (size == 0) {
      ++unknown;
      continue;
    }
    const size_t extent = start + size - reinterpret_cast<uintptr_t>(p);
    bool again = false;
    for (auto& s : seen) {
      if (s.first != start) continue;
      s.second = std::max(s.second, extent);
      again = true;
    }
    if (!again) seen.emplace_back(start, extent);
  }
  std::string buffers;
  for (const auto& s : seen) buffers += (buffers.empty() ? "" : ", ") + std::to_string(s.second);
  const std::string rec =
      "{\"kernel\": " + quoted(info.kernel) + ", \"file\": " + quoted(info.file) + ", \"grid\": " + triple(info.grid) +
      ", \"block\": " + triple(info.block) + ", \"smem\": " + std::to_string(info.smem) + ", \"buffers\": [" + buffers +
      "], \"unknown\": " + std::to_string(unknown) + ", \"struct_params\": " + std::to_string(info.struct_params) + "}";
  std::lock_guard<std::mutex> lock(g_mu);
  g_records.push_back(rec);
}

}  // namespace

void sr_sim_record(bool on) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (on == (sr_sim::recorder() != nullptr)) return;
  if (on) {
    c10::Allocator* current = c10::GetCPUAllocator();
    if (g_tracker == nullptr || g_tracker->inner() != current) g_tracker = new TrackingAllocator(current);
    c10::SetCPUAllocator(g_tracker);
    TORCH_CHECK(c10::GetCPUAllocator() == g_tracker,
                "record mode could not install its CPU allocator (another has a higher priority)");
    sr_sim::set_recorder(&on_launch);
  } else {
    sr_sim::set_recorder(nullptr);
    c10::SetCPUAllocator(g_tracker->inner());
  }
}

std::string sr_sim_take_records() {
  std::lock_guard<std::mutex> lock(g_mu);
  std::string out = "[";
  for (size_t i = 0; i < g_records.size(); ++i) out += (i ? ",\n " : "") + g_records[i];
  g_records.clear();
  return out + "]";
}
