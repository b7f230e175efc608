// KernelSet: the three computations a backend supplies (DESIGN.md, "Three kernels serve
// everything"). The op layer (conv_ops.cpp) validates arguments, allocates outputs, handles memory
// formats and empty batches, and then calls exactly one of these.
//
// Contract for every kernel: tensors are contiguous NCHW (weights K x C/g x R x S) of one dtype on
// the backend's device, shapes agree with ConvParams, N > 0, and the kernel writes every element of
// its output (outputs come from at::empty). `bias` may be an undefined tensor.
#pragma once

#include <ATen/core/Tensor.h>

#include "conv_params.h"

namespace convkernels {

struct KernelSet {
  // y = conv(x, w) + bias[k]
  void (*fprop)(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                const at::Tensor& bias, const at::Tensor& output);
  // dx = conv^T(dy, w) + bias[c]   (conv_transpose2d's forward)
  void (*dgrad)(const ConvParams& p, const at::Tensor& grad_output, const at::Tensor& weight,
                const at::Tensor& bias, const at::Tensor& grad_input);
  // dw = sum over n, p, q of dy[n, k, p, q] * x[n, c, p*stride - pad + r*dil, ...]
  void (*wgrad)(const ConvParams& p, const at::Tensor& input, const at::Tensor& grad_output,
                const at::Tensor& grad_weight);
};

}  // namespace convkernels
