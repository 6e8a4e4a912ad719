// The (binding-free) Python module init of sr_ops._C.
//
// The kernels behind the public ops (torch.library custom ops defined in
// sr_ops/ops/*.py, which validate, handle autograd and the fake kernel, and pick a
// backend) are private schemas `sr_ops::_<op>_fwd` / `_<op>_bwd`. Each op's CPU file,
// csrc/cpu/<op>.cpp, defines its own (TORCH_LIBRARY_FRAGMENT) and registers its CPU
// kernels; csrc/cuda/<op>_glue.cpp registers the CUDA ones for the same names.
#include <Python.h>

#ifndef SR_OPS_WITH_CUDA
#define SR_OPS_WITH_CUDA 0
#endif

// A module with no bindings: importing it loads the library, whose static
// initialisers register the ops above with the dispatcher.
static struct PyModuleDef sr_ops_module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};

PyMODINIT_FUNC PyInit__C(void) {
  PyObject* mod = PyModule_Create(&sr_ops_module);
  if (mod != nullptr) PyModule_AddIntConstant(mod, "WITH_CUDA", SR_OPS_WITH_CUDA);
  return mod;
}
