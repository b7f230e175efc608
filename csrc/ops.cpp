// The one list of convkernels ops. Three are kernels (DESIGN.md): conv2d is fprop, conv_transpose2d
// is dgrad, conv2d_weight is wgrad. The two backward ops are compositions of those three
// (registered from Python as CompositeImplicitAutograd), so every gradient, of any order, is again
// made of differentiable registered ops.
#include <Python.h>

#include <torch/library.h>

#include "op_schemas.h"

TORCH_LIBRARY(convkernels, m) { convkernels::define_conv_ops(m); }

// `import convkernels._C` loads this library, which runs the registrations above and those of every
// backend linked into it. The module itself has no Python functions.
extern "C" PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
