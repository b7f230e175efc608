// KernelSet: the three computations a backend supplies (DESIGN.md, "Three kernels serve
// everything"). The op layer (conv_ops.cpp) validates arguments, allocates outputs, handles memory
// formats and empty batches, and then calls exactly one of these.
//
// Contract for every kernel: tensors are contiguous NCHW (weights K x C/g x R x S) of one dtype on
// the backend's device, shapes agree with ConvParams, N, C and K are positive, and the kernel
// writes every element of its output (outputs come from at::empty). `bias` may be undefined.
//
// A backend may also supply the three over channels_last activations: then x, y, dy and dx are
// contiguous in at::MemoryFormat::ChannelsLast (N x H x W x C in memory), the weight is
// contiguous in either memory format (as the caller's was: K x R x S x C/g in memory for a
// channels_last one), the weight gradient is contiguous in ChannelsLast (as torch gives it for
// channels_last activations) and the rest of the contract is unchanged (the bias stays
// contiguous). Where these are null the op layer runs the NCHW kernels between two relayouts.
#pragma once

#include <ATen/core/Tensor.h>

#include "conv_params.h"

namespace convkernels {

struct KernelSet {
  using Fprop = void (*)(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                         const at::Tensor& bias, const at::Tensor& output);
  using Dgrad = void (*)(const ConvParams& p, const at::Tensor& grad_output,
                         const at::Tensor& weight, const at::Tensor& bias,
                         const at::Tensor& grad_input);
  using Wgrad = void (*)(const ConvParams& p, const at::Tensor& input,
                         const at::Tensor& grad_output, const at::Tensor& grad_weight);

  // y = conv(x, w) + bias[k]
  Fprop fprop;
  // dx = conv^T(dy, w) + bias[c]   (conv_transpose2d's forward)
  Dgrad dgrad;
  // dw = sum over n, p, q of dy[n, k, p, q] * x[n, c, p*stride - pad + r*dil, ...]
  Wgrad wgrad;

  // The same over channels_last activations, or null.
  Fprop fprop_channels_last = nullptr;
  Dgrad dgrad_channels_last = nullptr;
  Wgrad wgrad_channels_last = nullptr;
};

}  // namespace convkernels
