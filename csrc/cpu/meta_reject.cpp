// Meta tensors passed to the private schemas: a ValueError naming the argument, the class the
// checks give any other wrong device (csrc/check.h), instead of the dispatcher's
// NotImplementedError. The private schemas have no shape functions on purpose: the public
// custom ops (sr_ops/ops/<op>.py) carry the fake kernels that torch.compile traces, and call
// these schemas only with real CPU or CUDA tensors.
//
// python_tests/test_private_schemas.py lists every private schema and sends each one meta
// tensors, so a schema added without a line here fails that test.
#include <torch/library.h>

#include <string>

namespace {

void reject_meta(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const auto& args = op.schema().arguments();
  const size_t n = args.size(), first = stack->size() - n;
  std::string name = "the tensors";
  for (size_t i = 0; i < n; ++i) {
    const c10::IValue& v = (*stack)[first + i];
    if (v.isTensor() && v.toTensor().is_meta()) {
      name = args[i].name();
      break;
    }
  }
  TORCH_CHECK_VALUE(false, name, " must be a CPU or CUDA tensor, got meta");
}

}  // namespace

TORCH_LIBRARY_IMPL(sr_ops, Meta, m) {
  for (const char* name : {"_adapn_bwd",
                           "_adapn_fwd",
                           "_class_dispatch_fwd",
                           "_conv3x3_bwd_weight",
                           "_conv3x3_fwd",
                           "_conv3x3_gelu",
                           "_conv3x3_layernorm2d_fwd",
                           "_cross_scale_knn_bwd",
                           "_cross_scale_knn_fwd",
                           "_dwconv_gate_ca_bwd",
                           "_dwconv_gate_ca_fwd",
                           "_eca_bwd",
                           "_eca_fwd",
                           "_extract_patches_fwd",
                           "_gather_patches_bwd",
                           "_gather_patches_fwd",
                           "_gelu_layernorm2d_fwd",
                           "_graph_aggregate_bwd",
                           "_graph_aggregate_fwd",
                           "_layernorm2d_bwd",
                           "_layernorm2d_fwd",
                           "_merge_patches_bwd",
                           "_merge_patches_fwd",
                           "_naf_ffn_bwd",
                           "_naf_ffn_fwd",
                           "_patch2img_bwd",
                           "_patch2img_fwd",
                           "_to_channels_last_fwd",
                           "_vertex_map_fwd"}) {
    m.impl(name, torch::CppFunction::makeFromBoxedFunction<&reject_meta>());
  }
}
