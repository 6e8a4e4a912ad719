// The `sr_ops_cudasim` library's controls. Its kernel schemas are sr_ops's own, defined from
// Python when the library loads (python_tests/cuda_sim/_build.py); their CPU implementations
// are the CUDA glue and kernels run by the simulator.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <string>

// From sim.h, which is not included: its CUDA keyword macros are for the kernels' files.
namespace sr_sim {
enum class Schedule : int;
void set_schedule(Schedule s);
int64_t launch_count();
}  // namespace sr_sim

void sr_sim_record(bool on);        // record.cpp
std::string sr_sim_take_records();  // record.cpp

const char* sr_sim_selftest(const char* which, const float* x, float* out);  // selftest.cpp

namespace {

void set_schedule(int64_t schedule) {
  TORCH_CHECK(schedule >= 0 && schedule <= 2, "schedule must be 0 (forward), 1 (reverse) or 2 (free)");
  sr_sim::set_schedule(sr_sim::Schedule(schedule));
}

int64_t launch_count() { return sr_sim::launch_count(); }

void record(bool on) { sr_sim_record(on); }

std::string take_records() { return sr_sim_take_records(); }

// x: 64 float32 values -> 128 outputs; a launch failure raises, naming the self-test.
at::Tensor selftest(c10::string_view which, const at::Tensor& x) {
  TORCH_CHECK(x.is_cpu() && x.scalar_type() == at::kFloat && x.numel() == 64, "x must be 64 CPU floats");
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::zeros({128}, x.options());
  const std::string name(which);
  const char* err = sr_sim_selftest(name.c_str(), xc.const_data_ptr<float>(), out.mutable_data_ptr<float>());
  TORCH_CHECK(err[0] == '\0', "self-test ", name, " failed: ", err);
  return out;
}

}  // namespace

TORCH_LIBRARY(sr_ops_cudasim, m) {
  m.def("_sim_set_schedule(int schedule) -> ()", &set_schedule);
  m.def("_sim_launch_count() -> int", &launch_count);
  m.def("_sim_selftest(str which, Tensor x) -> Tensor", &selftest);
  m.def("_sim_record(bool on) -> ()", &record);
  m.def("_sim_take_records() -> str", &take_records);
}
