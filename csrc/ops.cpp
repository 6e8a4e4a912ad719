// The kernel schemas (csrc/schemas.h) defined in the `sr_ops` library, plus the
// (binding-free) Python module init.
//
// These are the backend kernels behind the public ops, which are torch.library
// custom ops defined in sr_ops/ops/*.py: the public op validates, handles autograd
// and the fake (meta) kernel, picks a backend, and for the `cpu`/`cuda` backends
// calls the kernels below (the dispatcher routes them by device).
#include <Python.h>
#include <torch/library.h>

#include "schemas.h"

TORCH_LIBRARY(sr_ops, m) {
  for (const char* schema : sr_ops_schemas::kSchemas) m.def(schema);
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
