// The plane correlation behind depthwise fprop, shared with the stride-1 depthwise dgrad.
//
// At stride 1 (and channel multiplier 1) the input gradient of a depthwise convolution is itself a
// depthwise forward convolution: dy correlated with each filter rotated by 180 degrees, at padding
// dil * (kernel - 1) - pad. depthwise_dgrad.cpp hands those cases to the forward kernels, so every
// forward fast path serves them too.
#pragma once

#include <ATen/core/Tensor.h>

#include "../conv_params.h"

namespace convkernels::cpu {

// output = bias + input (*) weight in the shapes of p (forward frame), each K x R x S filter read
// rotated by 180 degrees (w[k, R-1-r, S-1-s]) when `rotate`. Defined in depthwise_fprop.cpp.
void depthwise_correlate(const ConvParams& p, const at::Tensor& input, const at::Tensor& weight,
                         bool rotate, const at::Tensor& bias, const at::Tensor& output);

}  // namespace convkernels::cpu
