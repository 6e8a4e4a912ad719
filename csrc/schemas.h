// Every kernel schema of the extension, in one list: csrc/ops.cpp defines them in the
// `sr_ops` library; the CUDA simulator (csrc/testing/cuda_sim) defines the same in
// `sr_ops_cudasim`, so its kernels are called exactly as the real ones.
#pragma once

namespace sr_ops_schemas {

inline constexpr const char* kSchemas[] = {
  "_patch2img_fwd(Tensor patches, int H, int W, int stride) -> Tensor",
  "_patch2img_bwd(Tensor grad_out, int patch_size, int stride) -> Tensor",
  // window <= 0: every key patch is a candidate.
  "_cross_scale_knn_fwd(Tensor query, Tensor key, int k, int patch_size, int stride, "
      "int window, int scale, int window_offset=-1) -> (Tensor, Tensor)",
  "_cross_scale_knn_bwd(Tensor grad_dist, Tensor idx, Tensor query, Tensor key, "
      "int patch_size, int stride) -> (Tensor, Tensor)",
  // idx int64 of any shape -> (rows, cols) like it; values must lie in the key grid.
  "_vertex_map_fwd(Tensor idx, int Hk, int Wk, int scale, int patch_size, int stride) "
      "-> (Tensor, Tensor)",
  // neighbors (..., k, C, P, P), query (..., C, p, p) of one dtype.
  "_adapn_fwd(Tensor neighbors, Tensor query, float eps) -> Tensor",
  "_adapn_bwd(Tensor grad_out, Tensor neighbors, Tensor query, float eps) "
      "-> (Tensor, Tensor)",
  // weights given: (B, C, sH, sW) output and a grad_weights; else (B, k, C, sH, sW)
  // and an empty grad_weights.
  "_graph_aggregate_fwd(Tensor feat, Tensor idx, Tensor query_feat, Tensor? weights, "
      "int Hk, int Wk, int scale, int patch_size, int stride, bool adapn, float eps) -> Tensor",
  "_graph_aggregate_bwd(Tensor grad_out, Tensor feat, Tensor idx, Tensor query_feat, "
      "Tensor? weights, int Hk, int Wk, int scale, int patch_size, int stride, bool adapn, "
      "float eps) -> (Tensor, Tensor, Tensor)",
  // x (B, C, H, W), weight / bias (C,), one dtype; backward -> (grad_x, grad_weight, grad_bias).
  "_layernorm2d_fwd(Tensor x, Tensor weight, Tensor bias, float eps) -> Tensor",
  "_layernorm2d_bwd(Tensor grad_out, Tensor x, Tensor weight, Tensor bias, float eps) "
      "-> (Tensor, Tensor, Tensor)",
  // layernorm2d(gelu(x)); approximate "none" (erf) or "tanh", as F.gelu. Its backward is
  // _layernorm2d_bwd at gelu(x), then GELU's derivative (sr_ops/ops/gelu_layernorm2d.py).
  "_gelu_layernorm2d_fwd(Tensor x, Tensor weight, Tensor bias, float eps, str approximate) "
      "-> Tensor",
  // x (B, C, H, W), weight (k,) with k odd, one dtype; backward -> (grad_x, grad_weight).
  "_eca_fwd(Tensor x, Tensor weight) -> Tensor",
  "_eca_bwd(Tensor grad_out, Tensor x, Tensor weight) -> (Tensor, Tensor)",
  // x (B, C, H, W), dw_weight (C, 1, k, k), dw_bias (C,), ca_weight (C', C', 1, 1), ca_bias (C',),
  // one dtype; C' = C/2 with the gate. backward -> grads of x and the four weights.
  "_dwconv_gate_ca_fwd(Tensor x, Tensor dw_weight, Tensor dw_bias, Tensor ca_weight, "
      "Tensor ca_bias, bool gate) -> Tensor",
  "_dwconv_gate_ca_bwd(Tensor grad_out, Tensor x, Tensor dw_weight, Tensor dw_bias, "
      "Tensor ca_weight, Tensor ca_bias, bool gate) -> (Tensor, Tensor, Tensor, Tensor, Tensor)",
  // NAFNet's FFN half: y (B, C, H, W), w_in (2F, C), w_out (C, F), the vectors (C,) or
  // (2F,), one dtype. CPU only so far (sr_ops/_build_check.py lists it).
  "_naf_ffn_fwd(Tensor y, Tensor norm_weight, Tensor norm_bias, Tensor w_in, Tensor b_in, "
      "Tensor w_out, Tensor b_out, Tensor gamma, float eps) -> Tensor",
  "_naf_ffn_bwd(Tensor grad, Tensor y, Tensor norm_weight, Tensor norm_bias, Tensor w_in, "
      "Tensor b_in, Tensor w_out, Tensor b_out, Tensor gamma, float eps) -> (Tensor, Tensor, Tensor, "
      "Tensor, Tensor, Tensor, Tensor, Tensor)",
  // ClassSR patch dispatch. coords (N, 3) int64 (batch, row, col), order (N,) int64;
  // window i is coords[order[i]] (times scale for merge's HR side).
  "_extract_patches_fwd(Tensor img, int patch_size, int stride) -> (Tensor, Tensor)",
  "_class_dispatch_fwd(Tensor ids_or_logits, int num_classes) -> (Tensor, Tensor)",
  "_gather_patches_fwd(Tensor img, Tensor coords, Tensor order, int patch_size) -> Tensor",
  "_gather_patches_bwd(Tensor grad, Tensor coords, Tensor order, int B, int H, int W) -> Tensor",
  "_merge_patches_fwd(Tensor outputs, Tensor coords, Tensor order, int B, int H, int W, "
      "int scale) -> Tensor",
  "_merge_patches_bwd(Tensor grad, Tensor coords, Tensor order, int patch_size, int scale) "
      "-> Tensor",
};

}  // namespace sr_ops_schemas
