// Every C++ kernel schema in one place, plus the (binding-free) Python module init.
//
// These are the backend kernels behind the public ops, which are torch.library
// custom ops defined in sr_ops/ops/*.py: the public op validates, handles autograd
// and the fake (meta) kernel, picks a backend, and for the `cpu`/`cuda` backends
// calls the kernels below (the dispatcher routes them by device).
#include <Python.h>
#include <torch/library.h>

TORCH_LIBRARY(sr_ops, m) {
  m.def("_patch2img_fwd(Tensor patches, int H, int W, int stride) -> Tensor");
  m.def("_patch2img_bwd(Tensor grad_out, int patch_size, int stride) -> Tensor");
  // window <= 0: every key patch is a candidate.
  m.def("_cross_scale_knn_fwd(Tensor query, Tensor key, int k, int patch_size, int stride, "
        "int window, int scale) -> (Tensor, Tensor)");
  m.def("_cross_scale_knn_bwd(Tensor grad_dist, Tensor idx, Tensor query, Tensor key, "
        "int patch_size, int stride) -> (Tensor, Tensor)");
  // idx int64 of any shape -> (rows, cols) like it; values must lie in the key grid.
  m.def("_vertex_map_fwd(Tensor idx, int Hk, int Wk, int scale, int patch_size, int stride) "
        "-> (Tensor, Tensor)");
  // neighbors (..., k, C, P, P), query (..., C, p, p) of one dtype.
  m.def("_adapn_fwd(Tensor neighbors, Tensor query, float eps) -> Tensor");
  m.def("_adapn_bwd(Tensor grad_out, Tensor neighbors, Tensor query, float eps) "
        "-> (Tensor, Tensor)");
  // weights given: (B, C, sH, sW) output and a grad_weights; else (B, k, C, sH, sW)
  // and an empty grad_weights.
  m.def("_graph_aggregate_fwd(Tensor feat, Tensor idx, Tensor query_feat, Tensor? weights, "
        "int Hk, int Wk, int scale, int patch_size, int stride, bool adapn, float eps) -> Tensor");
  m.def("_graph_aggregate_bwd(Tensor grad_out, Tensor feat, Tensor idx, Tensor query_feat, "
        "Tensor? weights, int Hk, int Wk, int scale, int patch_size, int stride, bool adapn, "
        "float eps) -> (Tensor, Tensor, Tensor)");
  // x (B, C, H, W), weight / bias (C,), one dtype; backward -> (grad_x, grad_weight, grad_bias).
  m.def("_layernorm2d_fwd(Tensor x, Tensor weight, Tensor bias, float eps) -> Tensor");
  m.def("_layernorm2d_bwd(Tensor grad_out, Tensor x, Tensor weight, Tensor bias, float eps) "
        "-> (Tensor, Tensor, Tensor)");
  // x (B, C, H, W), weight (k,) with k odd, one dtype; backward -> (grad_x, grad_weight).
  m.def("_eca_fwd(Tensor x, Tensor weight) -> Tensor");
  m.def("_eca_bwd(Tensor grad_out, Tensor x, Tensor weight) -> (Tensor, Tensor)");
  // x (B, C, H, W), dw_weight (C, 1, k, k), dw_bias (C,), ca_weight (C', C', 1, 1), ca_bias (C',),
  // one dtype; C' = C/2 with the gate. backward -> grads of x and the four weights.
  m.def("_dwconv_gate_ca_fwd(Tensor x, Tensor dw_weight, Tensor dw_bias, Tensor ca_weight, "
        "Tensor ca_bias, bool gate) -> Tensor");
  m.def("_dwconv_gate_ca_bwd(Tensor grad_out, Tensor x, Tensor dw_weight, Tensor dw_bias, "
        "Tensor ca_weight, Tensor ca_bias, bool gate) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  // ClassSR patch dispatch. coords (N, 3) int64 (batch, row, col), order (N,) int64;
  // window i is coords[order[i]] (times scale for merge's HR side).
  m.def("_extract_patches_fwd(Tensor img, int patch_size, int stride) -> (Tensor, Tensor)");
  m.def("_class_dispatch_fwd(Tensor ids_or_logits, int num_classes) -> (Tensor, Tensor)");
  m.def("_gather_patches_fwd(Tensor img, Tensor coords, Tensor order, int patch_size) -> Tensor");
  m.def("_gather_patches_bwd(Tensor grad, Tensor coords, Tensor order, int B, int H, int W) -> Tensor");
  m.def("_merge_patches_fwd(Tensor outputs, Tensor coords, Tensor order, int B, int H, int W, "
        "int scale) -> Tensor");
  m.def("_merge_patches_bwd(Tensor grad, Tensor coords, Tensor order, int patch_size, int scale) "
        "-> Tensor");
}

#ifndef SR_OPS_WITH_CUDA
#define SR_OPS_WITH_CUDA 0
#endif

// A module with no bindings: importing it loads the library, whose static
// initialisers register the ops above with the dispatcher.
static struct PyModuleDef sr_ops_module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1,
                                           nullptr};

PyMODINIT_FUNC PyInit__C(void) {
  PyObject* mod = PyModule_Create(&sr_ops_module);
  if (mod != nullptr) PyModule_AddIntConstant(mod, "WITH_CUDA", SR_OPS_WITH_CUDA);
  return mod;
}
