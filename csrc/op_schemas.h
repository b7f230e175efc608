// Schemas of the convolution ops (conv2d's shuffle_output: ShuffleNet's channel shuffle with
// `groups` groups fused into the output write, see ConvParams), shared by the `convkernels` library and the `convkernels_simt`
// library (the CUDA kernels run on the CPU by the SIMT emulator), so both expose the same ops.
#pragma once

#include <torch/library.h>

#include "float32_precision.h"

namespace convkernels {

inline void define_conv_ops(torch::Library& m) {
  m.def(
      "conv2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, "
      "int[2] dilation, int groups, bool shuffle_output=False) -> Tensor");
  m.def(
      "conv_transpose2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, "
      "int[2] padding, SymInt[2] output_padding, int groups, int[2] dilation) -> Tensor");
  m.def(
      "conv2d_weight(Tensor input, Tensor grad_output, SymInt[4] weight_size, int[2] stride, "
      "int[2] padding, int[2] dilation, int groups) -> Tensor");
  m.def(
      "conv2d_backward(Tensor grad_output, Tensor input, Tensor weight, int[2] stride, "
      "int[2] padding, int[2] dilation, int groups, bool shuffle_output, bool[3] output_mask) "
      "-> (Tensor?, Tensor?, Tensor?)");
  m.def(
      "conv_transpose2d_backward(Tensor grad_output, Tensor input, Tensor weight, int[2] stride, "
      "int[2] padding, SymInt[2] output_padding, int groups, int[2] dilation, bool[3] output_mask) "
      "-> (Tensor?, Tensor?, Tensor?)");
  // The library's float32 precision on CUDA ("default" or "3xtf32"); returns the previous one.
  m.def("set_float32_precision(str precision) -> str", &set_float32_precision);
}

}  // namespace convkernels
