// The `sr_ops_cudasim` library: the extension's kernel schemas (csrc/schemas.h), whose CPU
// implementations are the CUDA glue and kernels run by the simulator, plus two controls.
#include <torch/library.h>

#include "schemas.h"

// From sim.h, which is not included: its CUDA keyword macros are for the kernels' files.
namespace sr_sim {
enum class Schedule : int;
void set_schedule(Schedule s);
int64_t launch_count();
}  // namespace sr_sim

namespace {

void set_schedule(int64_t schedule) {
  TORCH_CHECK(schedule >= 0 && schedule <= 2, "schedule must be 0 (forward), 1 (reverse) or 2 (free)");
  sr_sim::set_schedule(sr_sim::Schedule(schedule));
}

int64_t launch_count() { return sr_sim::launch_count(); }

}  // namespace

TORCH_LIBRARY(sr_ops_cudasim, m) {
  for (const char* schema : sr_ops_schemas::kSchemas) m.def(schema);
  m.def("_sim_set_schedule(int schedule) -> ()", &set_schedule);
  m.def("_sim_launch_count() -> int", &launch_count);
}
